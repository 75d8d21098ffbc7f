"""Faults inside a sweep: each faulty cell becomes a row with a status and a message, the
other cells are still measured, and the CLI's exit code reports the failures."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import faulty_plugins
import psutil
import pytest
from faulty_plugins import TINY_NET

from deploybench.cache import ArtifactCache
from deploybench.cli import main
from deploybench.harness import MeasurePolicy
from deploybench.results import Results, Row
from deploybench.sweep import Sweep, SweepConfig

# Long enough for a healthy worker to import torch and finish on a busy 2-core runner,
# short enough that the hanging cell does not dominate the suite.
HANG_TIMEOUT_S = 15.0


@pytest.fixture
def faults() -> Iterator[None]:
    with faulty_plugins.installed():
        yield


def run_sweep(tmp_path: Path, runtimes: tuple[str, ...], isolate: bool, timeout_s: float = 600.0) -> dict[str, Row]:
    """Sweep the tiny model over ``runtimes`` at batch 1; rows by runtime, as saved on disk."""
    config = SweepConfig(
        models=(TINY_NET,),
        runtimes=runtimes,
        batches=(1,),
        policy=MeasurePolicy.quick(),
        isolate=isolate,
        timeout_s=timeout_s,
        parity_images=2,
    )
    results_path = tmp_path / "results.json"
    sweep = Sweep(config, ArtifactCache(tmp_path / "cache"), Results(), results_path, work_dir=tmp_path / "refs")
    sweep.run()
    saved = Results.load(results_path)  # what a user finds on disk, not only what is in memory
    assert [r.key for r in saved.rows] == [r.key for r in sweep.results.rows]
    return {row.runtime: row for row in saved.rows}


def assert_measured(row: Row) -> None:
    assert row.status == "ok", row.message
    assert row.samples_ms and all(s > 0 for s in row.samples_ms)
    assert row.parity_verdict == "pass"


def workers_alive() -> list[psutil.Process]:
    """Worker processes still running: fresh interpreters (``-m deploybench.worker``) and those
    forked by the zygote, which carry its command line. The zygote itself, a child of this
    process, stays for the next sweep."""

    def is_worker(p: psutil.Process) -> bool:
        command = " ".join(p.cmdline())
        if "-m deploybench.worker" in command:
            return True
        return "-m deploybench.zygote" in command and p.ppid() != os.getpid()

    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and is_worker(p)
    ]


def test_crashes_and_hangs_become_rows_and_the_healthy_cell_is_measured(tmp_path: Path, faults: None) -> None:
    runtimes = ("fault-segfault", "torch", "fault-killed", "fault-hang")
    rows = run_sweep(tmp_path, runtimes, isolate=True, timeout_s=HANG_TIMEOUT_S)
    assert set(rows) == set(runtimes)
    assert_measured(rows["torch"])
    crashed = rows["fault-segfault"]
    assert crashed.status == "crashed"
    assert "SIGSEGV" in crashed.message
    killed = rows["fault-killed"]
    assert killed.status == "crashed"
    assert "SIGKILL" in killed.message and "out-of-memory killer" in killed.message
    hung = rows["fault-hang"]
    assert hung.status == "timeout"
    assert f"{HANG_TIMEOUT_S:.0f} s" in hung.message and "--timeout" in hung.message
    assert workers_alive() == []  # the hung worker was killed, not left behind
    for row in (crashed, killed, hung):
        assert not row.samples_ms and row.stats is None


def test_in_process_faults_become_rows_and_the_healthy_cell_is_measured(tmp_path: Path, faults: None) -> None:
    rows = run_sweep(
        tmp_path, ("fault-memoryerror", "fault-cuda-oom", "torch", "fault-nan", "fault-export-rt"), isolate=False
    )
    assert_measured(rows["torch"])

    memory = rows["fault-memoryerror"]
    assert (memory.status, memory.message.split(":")[0]) == ("oom", "MemoryError")
    cuda = rows["fault-cuda-oom"]
    assert cuda.status == "oom" and "CUDA out of memory" in cuda.message

    nan = rows["fault-nan"]  # it ran, so it is timed; its numbers are wrong, so parity fails
    assert nan.status == "ok" and nan.samples_ms
    assert nan.parity_verdict == "fail"
    assert any("NaN/Inf" in reason for reason in nan.parity.reasons)
    assert all(o.nonfinite > 0 and o.cosine is None for o in nan.parity.outputs)  # null, not NaN, in JSON

    export = rows["fault-export-rt"]
    assert export.status == "export-failed"
    assert export.format == "fault-export"
    assert "simulated exporter crash" in export.message and "fault-export export of" in export.message


def test_a_failed_export_leaves_nothing_in_the_cache(tmp_path: Path, faults: None) -> None:
    run_sweep(tmp_path, ("fault-export-rt",), isolate=False)
    cache = ArtifactCache(tmp_path / "cache")
    assert cache.entries() == []
    assert not [p for p in cache.root.iterdir() if p.name.startswith(".tmp-")]


def compare_cli(tmp_path: Path, runtimes: str, *extra: str) -> int:
    return main(
        [
            "compare",
            "--models",
            TINY_NET,
            "--runtimes",
            runtimes,
            "--precisions",
            "fp32",
            "--batch",
            "1",
            "--quick",
            "--no-isolate",
            "--out",
            str(tmp_path / "out"),
            "--cache",
            str(tmp_path / "cache"),
            *extra,
        ]
    )


def test_exit_code_is_zero_when_every_cell_passes(tmp_path: Path, faults: None) -> None:
    assert compare_cli(tmp_path, "torch") == 0


def test_a_row_far_slower_than_eager_is_flagged_as_misconfigured(
    tmp_path: Path, faults: None, capsys: pytest.CaptureFixture
) -> None:
    """#16.4: a row more than 3x slower per image than eager says so, with the ratio, instead of a bare "ok"."""
    assert compare_cli(tmp_path, "torch,fault-slow-infer") == 0
    table = capsys.readouterr().out
    rows = {row.runtime: row for row in Results.load(tmp_path / "out" / "results.json").rows}
    slow, eager = rows["fault-slow-infer"], rows["torch"]
    ratio = slow.ms_per_image / eager.ms_per_image
    assert ratio > 3
    flags = [w for w in slow.warnings if w.startswith("likely misconfiguration")]
    assert len(flags) == 1 and flags[0].startswith(f"likely misconfiguration: {ratio:.1f}x slower than eager (")
    assert not any(w.startswith("likely misconfiguration") for w in eager.warnings)
    status = next(line for line in table.splitlines() if "fault-slow-infer" in line)
    assert f"likely misconfiguration: {ratio:.1f}x slower than eager" in status and "ok (" in status


def test_exit_code_reports_a_failed_cell(tmp_path: Path, faults: None, capsys: pytest.CaptureFixture) -> None:
    assert compare_cli(tmp_path, "torch,fault-memoryerror") == 1
    out = capsys.readouterr().out
    assert "oom: MemoryError" in out
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert sorted(r["status"] for r in rows) == ["ok", "oom"]


def test_exit_code_reports_failed_parity_unless_allowed(
    tmp_path: Path, faults: None, capsys: pytest.CaptureFixture
) -> None:
    assert compare_cli(tmp_path, "torch,fault-nan") == 1
    assert "1 rows failed parity" in capsys.readouterr().err
    assert compare_cli(tmp_path, "torch,fault-nan", "--allow-mismatch", "--resume", str(tmp_path / "out")) == 0
