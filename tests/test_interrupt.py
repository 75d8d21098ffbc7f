"""Interrupted runs: SIGINT or SIGTERM mid-sweep keeps every finished row in a valid results
file, ``--resume`` runs only the missing cells, and a killed export leaves nothing the
cache would trust."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import faulty_plugins
import psutil
import pytest
from faulty_plugins import STALL_ENV, TINY_NET

from deploybench.cache import ArtifactCache
from deploybench.cli import main
from deploybench.exporters.base import ExportOptions
from deploybench.models import resolve

TESTS_DIR = str(Path(__file__).resolve().parent)
WAIT_S = 120.0  # generous: a busy CI runner can take a while to import torch


def child_env(**extra: str) -> dict[str, str]:
    """This environment, with the tests folder importable (the tiny model and faulty plugins live there)."""
    env = {k: v for k, v in os.environ.items() if k != faulty_plugins.GUARD_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, env.get("PYTHONPATH")) if p)
    return {**env, **extra}


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT;
    # restore the default so the child behaves as it would at a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the process ended (code {proc.returncode}) before {what}:\n{log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-2000:]}")
        time.sleep(0.02)


def saved_rows(path: Path) -> list[dict]:
    """The rows in a results file, parsed strictly (no NaN or Infinity tokens allowed)."""
    if not path.is_file():
        return []

    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)["rows"]


def compare_args(out: Path, cache: Path, batches: str) -> list[str]:
    return [
        "compare",
        "--models",
        TINY_NET,
        "--runtimes",
        "torch",
        "--precisions",
        "fp32",
        "--batch",
        batches,
        "--quick",
        "--out",
        str(out),
        "--cache",
        str(cache),
    ]


def start_compare(tmp_path: Path, batches: str, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "compare.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploybench", *compare_args(tmp_path / "out", tmp_path / "cache", batches), *extra],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=child_env(),
            preexec_fn=_default_sigint,
        )
    return proc, log


def children(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:  # it has just ended; wait_until reports that
        return []


def split_helpers(proc: subprocess.Popen, processes: list[psutil.Process]) -> tuple[list, list]:
    """(workers, the zygote): the zygote is the sweep's child; the workers it forks are its
    children and carry its command line."""
    helpers = []
    for p in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.ppid() == proc.pid and "-m deploybench.zygote" in " ".join(p.cmdline()):
                helpers.append(p)
    return [p for p in processes if p not in helpers], helpers


@pytest.fixture
def killer() -> Iterator[list[subprocess.Popen]]:
    """Processes a test started; any still running at the end are killed."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_clean_results_folder(out: Path) -> None:
    """No temporary file from an interrupted atomic write is left behind."""
    assert [p.name for p in out.iterdir() if p.name.startswith(".results")] == []


def test_sigint_keeps_finished_rows_and_resume_runs_only_the_rest(
    tmp_path: Path, killer: list, capsys: pytest.CaptureFixture
) -> None:
    proc, log = start_compare(tmp_path, "1,2,3")
    killer.append(proc)
    results = tmp_path / "out" / "results.json"
    wait_until(lambda: len(saved_rows(results)) >= 1, proc, "the first row", log)
    # Interrupt while the next cell's worker process is running.
    wait_until(lambda: bool(split_helpers(proc, children(proc))[0]), proc, "the next worker", log)
    workers, helpers = split_helpers(proc, children(proc))
    assert workers
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "interrupted; finished rows are kept" in log.read_text()
    alive = [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], "a worker outlived the sweep"
    # The zygote reads the end of its input once it is done importing what it preloads.
    _, lingering = psutil.wait_procs(helpers, timeout=30)
    assert [h for h in lingering if h.status() != psutil.STATUS_ZOMBIE] == [], "the zygote outlived the sweep"

    kept = saved_rows(results)
    assert 1 <= len(kept) < 3
    assert all(r["status"] == "ok" and r["samples_ms"] for r in kept)
    assert_clean_results_folder(tmp_path / "out")

    code = main(
        [
            *compare_args(tmp_path / "out", tmp_path / "cache", "1,2,3"),
            "--no-isolate",
            "--resume",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    assert f"resuming: {len(kept)} rows already" in capsys.readouterr().err
    final = saved_rows(results)
    assert sorted(r["batch"] for r in final) == [1, 2, 3]
    before = {(r["batch"]): r["samples_ms"] for r in kept}
    assert {r["batch"]: r["samples_ms"] for r in final if r["batch"] in before} == before  # not measured again


def test_sigterm_keeps_finished_rows(tmp_path: Path, killer: list) -> None:
    batches = "1,2,3,4,5,6,7,8"
    proc, log = start_compare(tmp_path, batches, "--no-isolate")
    killer.append(proc)
    results = tmp_path / "out" / "results.json"
    wait_until(lambda: len(saved_rows(results)) >= 1, proc, "the first row", log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    kept = saved_rows(results)
    assert 1 <= len(kept) < len(batches.split(","))
    assert all(r["status"] == "ok" for r in kept)
    assert_clean_results_folder(tmp_path / "out")


KILLED_EXPORT = """
import sys
from pathlib import Path
import faulty_plugins
from deploybench.cache import ArtifactCache
from deploybench.exporters.base import ExportOptions
from deploybench.models import resolve

faulty_plugins.register_all()
ArtifactCache(Path(sys.argv[1])).get_or_export(faulty_plugins.PartialExporter(), resolve(faulty_plugins.TINY_NET),
                                               ExportOptions())
"""


def test_a_killed_export_leaves_nothing_the_cache_trusts(
    tmp_path: Path, killer: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    log = tmp_path / "export.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED_EXPORT, str(root)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=child_env(**{STALL_ENV: "1"}),
        )
    killer.append(proc)
    wait_until(lambda: any(root.glob(".tmp-*/half-written")), proc, "the export to be half-way", log)
    proc.kill()  # SIGKILL: no cleanup code runs
    proc.wait()

    monkeypatch.delenv(STALL_ENV, raising=False)
    cache, spec, exporter = ArtifactCache(root), resolve(TINY_NET), faulty_plugins.PartialExporter()
    folder = cache.folder(exporter, spec, ExportOptions())
    leftovers = [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1 and (leftovers[0] / "model.bin").is_file()
    assert not folder.exists()
    assert cache.lookup(folder) is None
    assert cache.entries() == []

    # The dead process's lock is released: a new export neither waits nor reuses the half file.
    with open(root / ".locks" / f"{folder.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(handle, fcntl.LOCK_UN)
    with faulty_plugins.installed():
        artifact, hit = cache.get_or_export(exporter, spec, ExportOptions())
    assert not hit
    assert artifact.integrity_problem() is None
    assert (folder / "model.bin").stat().st_size == 4 * (1 << 16)
    # The next export of the same key, holding its lock, removed the dead export's staging folder.
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    assert cache.clear() == 1
    assert [p.name for p in root.iterdir()] == [".locks"]


def test_a_process_forked_during_a_sweep_can_be_terminated() -> None:
    """A library's helper forked mid-sweep (OpenVINO telemetry) must die on SIGTERM, not inherit
    the sweep's Python-level handler, which a child blocked in C code never runs."""
    import os
    import signal

    from deploybench.api import _sigterm_as_interrupt

    with _sigterm_as_interrupt():
        pid = os.fork()
        if pid == 0:
            os._exit(0 if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else 1)
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
