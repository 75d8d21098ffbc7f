"""Workers of torch runtimes are forked by a zygote that imported torch once; the others
start as fresh interpreters. Exit statuses and kills reach the parent as with ``Popen``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import faulty_plugins
import pytest
from faulty_plugins import TINY_NET

from deploybench import isolation
from deploybench.cache import ArtifactCache
from deploybench.harness import MeasurePolicy
from deploybench.results import Results, Row
from deploybench.sweep import Sweep, SweepConfig


@pytest.fixture
def faults() -> Iterator[None]:
    with faulty_plugins.installed():
        yield


@pytest.fixture
def zygote() -> Iterator[isolation._Zygote]:
    """A zygote that preloads a cheap module, so the protocol is tested without torch's import."""
    z = isolation._Zygote(("json",))
    yield z
    z.close()


def sweep(tmp_path: Path, runtime: str) -> list[Row]:
    config = SweepConfig(
        models=(TINY_NET,), runtimes=(runtime,), batches=(1, 2), policy=MeasurePolicy.quick(), parity_images=2
    )
    return Sweep(config, ArtifactCache(tmp_path / "cache"), Results(), work_dir=tmp_path / "refs").run().rows


PATH = [p for p in sys.path if p]


def forked_pids() -> set[int]:
    return {pid for z in isolation._zygotes.values() for pid in z._ended}


def test_torch_workers_are_forked_by_the_zygote_and_others_start_fresh(tmp_path: Path, faults: None) -> None:
    torch_rows = sweep(tmp_path, "torch")
    ort_rows = sweep(tmp_path, "onnxruntime")
    assert [r.status for r in torch_rows + ort_rows] == ["ok"] * 4, [r.message for r in torch_rows + ort_rows]
    torch_pid = {r.runtime_info["worker_pid"] for r in torch_rows}
    ort_pid = {r.runtime_info["worker_pid"] for r in ort_rows}
    assert len(torch_pid) == 1 and torch_pid <= forked_pids()  # one worker for both batches, forked
    assert not ort_pid & forked_pids()  # an ONNX Runtime worker carries no preloaded torch


def test_a_failing_worker_reports_its_exit_code_and_its_traceback(tmp_path: Path, zygote: isolation._Zygote) -> None:
    log = tmp_path / "worker.log"
    log.touch()
    worker = zygote.fork([str(tmp_path / "no-cells.json"), str(tmp_path), str(log), dict(os.environ), PATH])
    assert worker is not None
    assert worker.wait(timeout=60) == 1
    assert "no-cells.json" in log.read_text()  # the worker's stderr went to its log


def test_a_killed_worker_reports_the_signal_and_had_its_own_session(tmp_path: Path, zygote: isolation._Zygote) -> None:
    cells = tmp_path / "cells.json"
    os.mkfifo(cells)  # opening it blocks until a writer comes: a worker that hangs
    log = tmp_path / "worker.log"
    log.touch()
    worker = zygote.fork([str(cells), str(tmp_path), str(log), dict(os.environ), PATH])
    assert worker is not None
    with pytest.raises(subprocess.TimeoutExpired):
        worker.wait(timeout=0.5)
    assert worker.poll() is None
    for _ in range(100):  # setsid is the worker's first step
        if os.getpgid(worker.pid) == worker.pid:
            break
        os.sched_yield()
    assert os.getpgid(worker.pid) == worker.pid != os.getpgid(0)
    isolation._kill(worker)
    assert worker.poll() == -signal.SIGKILL


def test_the_zygote_ends_when_its_parent_closes_its_input(zygote: isolation._Zygote) -> None:
    zygote.close()
    assert zygote.process.wait(timeout=30) == 0
    assert zygote.fork(["cells.json", ".", "log", {}, []]) is None  # the parent then starts a fresh worker


def test_a_sweep_starts_the_zygote_only_for_runtimes_that_fork_from_it() -> None:
    for zygote in isolation._zygotes.values():
        zygote.close()
    isolation._zygotes.clear()
    isolation.start_zygote(["onnxruntime", "openvino"])
    assert isolation._zygotes == {}
    isolation.start_zygote(["onnxruntime", "torch"])
    (zygote,) = isolation._zygotes.values()
    assert zygote.process.poll() is None  # importing torch while the sweep builds its references
    isolation.start_zygote(["torchscript"])
    assert list(isolation._zygotes.values()) == [zygote]  # one per sweep, not one per runtime
