"""Workers of torch runtimes are forked by a zygote that imported torch once; the others
start as fresh interpreters. Exit statuses and kills reach the parent as with ``Popen``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import faulty_plugins
import pytest
from faulty_plugins import TINY_NET

from deploybench import spawn
from deploybench.cache import ArtifactCache
from deploybench.harness import MeasurePolicy
from deploybench.results import Results, Row
from deploybench.sweep import Sweep, SweepConfig


@pytest.fixture
def faults() -> Iterator[None]:
    with faulty_plugins.installed():
        yield


@pytest.fixture
def zygote() -> Iterator[spawn.ZygoteClient]:
    """A zygote that preloads a cheap module, so the protocol is tested without torch's import."""
    z = spawn.ZygoteClient(("json",))
    yield z
    z.close()


def sweep(tmp_path: Path, runtime: str) -> list[Row]:
    config = SweepConfig(
        models=(TINY_NET,), runtimes=(runtime,), batches=(1, 2), policy=MeasurePolicy.quick(), parity_images=2
    )
    return Sweep(config, ArtifactCache(tmp_path / "cache"), Results(), work_dir=tmp_path / "refs").run().rows


PATH = [p for p in sys.path if p]


def forked_pids() -> set[int]:
    return {pid for z in spawn._zygotes.values() for pid in z._ended}


def test_torch_workers_are_forked_by_the_zygote_and_others_start_fresh(tmp_path: Path, faults: None) -> None:
    torch_rows = sweep(tmp_path, "torch")
    ort_rows = sweep(tmp_path, "onnxruntime")
    assert [r.status for r in torch_rows + ort_rows] == ["ok"] * 4, [r.message for r in torch_rows + ort_rows]
    torch_pid = {r.runtime_info["worker_pid"] for r in torch_rows}
    ort_pid = {r.runtime_info["worker_pid"] for r in ort_rows}
    assert len(torch_pid) == 1 and torch_pid <= forked_pids()  # one worker for both batches, forked
    assert not ort_pid & forked_pids()  # an ONNX Runtime worker carries no preloaded torch


def request(tmp_path: Path, cells: Path) -> list:
    log = tmp_path / "worker.log"
    log.touch()
    return [str(cells), str(tmp_path), str(log), dict(os.environ), PATH]


def test_a_failing_worker_reports_its_exit_code_and_its_traceback(tmp_path: Path, zygote: spawn.ZygoteClient) -> None:
    worker = zygote.fork(request(tmp_path, tmp_path / "no-cells.json"), timeout=60)
    assert worker is not None
    assert worker.wait(timeout=60) == 1
    assert not zygote.gone  # the status came from the zygote, not from the fallback for a lost one
    assert "no-cells.json" in (tmp_path / "worker.log").read_text()  # the worker's stderr went to its log


def test_a_killed_worker_reports_the_signal_and_had_its_own_session(tmp_path: Path, zygote: spawn.ZygoteClient) -> None:
    cells = tmp_path / "cells.json"
    os.mkfifo(cells)  # opening it blocks until a writer comes: a worker that hangs
    worker = zygote.fork(request(tmp_path, cells), timeout=60)
    assert worker is not None
    with pytest.raises(subprocess.TimeoutExpired):
        worker.wait(timeout=0.5)
    assert worker.poll() is None
    for _ in range(1000):  # setsid is the worker's first step
        if os.getsid(worker.pid) == worker.pid:
            break
        time.sleep(0.001)
    assert os.getsid(worker.pid) == worker.pid != os.getsid(0)
    spawn.kill_worker(worker)
    assert worker.poll() == -signal.SIGKILL


def test_the_zygote_ends_when_its_parent_closes_its_input(tmp_path: Path, zygote: spawn.ZygoteClient) -> None:
    zygote.close()
    assert zygote.process.wait(timeout=30) == 0
    assert zygote.fork(request(tmp_path, tmp_path / "cells.json"), timeout=5) is None  # a fresh worker runs instead


def rss_file_kb(pid: int | str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/PID/status")


def test_a_forked_worker_counts_the_library_pages_a_fresh_import_would() -> None:
    from deploybench import zygote

    resident = zygote.resident_file_pages()
    parent_kb = rss_file_kb(os.getpid())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reads its figures and leaves without running anything else
        try:
            before = rss_file_kb("self")
            zygote.touch(resident)
            os.write(write, f"{before} {rss_file_kb('self')}".encode())
        finally:
            os._exit(0)
    os.close(write)  # a child that died writes nothing, and the read below sees the end
    os.waitpid(pid, 0)
    answer = os.read(read, 100).split()
    os.close(read)
    assert len(answer) == 2, "the forked child died before it answered"
    before, after = map(int, answer)
    assert before < 0.9 * parent_kb  # fork alone leaves the libraries' pages uncounted (else this proves nothing)
    assert after >= 0.95 * parent_kb


def test_a_sweep_starts_the_zygote_only_for_runtimes_that_fork_from_it() -> None:
    for zygote in spawn._zygotes.values():
        zygote.close()
    spawn._zygotes.clear()
    spawn._broken.clear()
    spawn.start_zygote(["onnxruntime", "openvino"])
    assert spawn._zygotes == {}
    spawn.start_zygote(["onnxruntime", "torch"])
    (zygote,) = spawn._zygotes.values()
    assert zygote.process.poll() is None  # importing torch while the sweep builds its references
    spawn.start_zygote(["torchscript"])
    assert list(spawn._zygotes.values()) == [zygote]  # one per sweep, not one per runtime


def test_a_worker_exits_as_the_interpreter_would() -> None:
    from deploybench.zygote import _exit_code

    assert _exit_code(SystemExit()) == 0
    assert _exit_code(SystemExit(3)) == 3
    assert _exit_code(SystemExit("bad cells file")) == 1


def test_workers_still_running_end_with_the_zygote(tmp_path: Path, zygote: spawn.ZygoteClient) -> None:
    cells = tmp_path / "cells.json"
    os.mkfifo(cells)  # the worker hangs opening it
    worker = zygote.fork(request(tmp_path, cells), timeout=60)
    assert worker is not None and worker.poll() is None
    zygote.close()  # what the parent's exit does, however it ends
    for _ in range(300):
        if not spawn.running(worker.pid):
            break
        time.sleep(0.01)
    assert not spawn.running(worker.pid)


def until_gone(zygote: spawn.ZygoteClient) -> bool:
    with zygote._lock:
        return zygote._lock.wait_for(lambda: zygote.gone, 30)


def test_a_zygote_that_dies_after_it_was_ready_is_replaced_and_one_that_never_was_is_not() -> None:
    for zygote in spawn._zygotes.values():
        zygote.close()
    spawn._zygotes.clear()
    spawn._broken.clear()
    first = spawn.zygote_for("torch")
    assert first is not None and first.wait_ready(120)
    first.process.kill()
    first.process.wait()
    assert until_gone(first)  # the listener heard the end
    second = spawn.zygote_for("torch")
    assert second is not None and second is not first
    second.close(kill=True)  # dies before it is ready
    assert until_gone(second) and not second.ready
    assert spawn.zygote_for("torch") is None  # not retried: torch workers start fresh
    spawn._broken.clear()
    spawn._zygotes.clear()


def test_a_process_forked_from_the_parent_can_exit(zygote: spawn.ZygoteClient) -> None:
    # An exporter's compile-worker pool forks the parent; at its exit the child closes its copy
    # of the zygote's pipes. A listener blocked in a buffered read would hold that file's lock
    # in the parent at the fork, and the child would hang on it forever.
    assert zygote.wait_ready(60)
    time.sleep(0.2)  # the listener is blocked reading the zygote's output
    pid = os.fork()
    if pid == 0:
        try:
            zygote.close()  # an inherited atexit handler: does nothing in another process
            assert zygote.process.stdout is not None
            zygote.process.stdout.close()  # what the child's finalisation does
        finally:
            os._exit(0)
    for _ in range(200):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError("the forked process hung on a lock the listener held")
    assert os.waitstatus_to_exitcode(status) == 0
    assert zygote.process.poll() is None  # and the zygote is still the parent's


def test_a_forked_worker_counts_the_zygotes_resident_file_pages(tmp_path: Path, zygote: spawn.ZygoteClient) -> None:
    cells = tmp_path / "cells.json"
    os.mkfifo(cells)  # the worker hangs opening it, after its start-up
    worker = zygote.fork(request(tmp_path, cells), timeout=60)
    assert worker is not None
    try:
        zygote_kb = rss_file_kb(zygote.process.pid)
        for _ in range(100):  # until the worker's start-up has read the pages
            if rss_file_kb(worker.pid) >= 0.9 * zygote_kb:
                break
            time.sleep(0.05)
        assert rss_file_kb(worker.pid) >= 0.9 * zygote_kb
    finally:
        spawn.kill_worker(worker)
