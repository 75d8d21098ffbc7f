"""Two runs into one --out: the second is refused at once, in one line, and the first one's
rows are never overwritten (#16.2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from faulty_plugins import TINY_NET

from deploybench.cli import main
from deploybench.output_lock import LOCK_NAME, OutputBusyError, exclusive_output

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from deploybench.output_lock import exclusive_output
    with exclusive_output(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(600)
""")


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """An output folder held by another process, as a running 'compare --out' holds it."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield out, proc
    finally:
        proc.kill()
        proc.wait()


def compare_into(out: Path, tmp_path: Path, option: str = "--out") -> list[str]:
    return [
        "compare",
        "--models",
        TINY_NET,
        "--runtimes",
        "torch",
        "--batch",
        "1",
        "--quick",
        "--no-isolate",
        "--cache",
        str(tmp_path / "cache"),
        option,
        str(out),
    ]


@pytest.mark.parametrize("option", ["--out", "--resume"])
def test_a_second_run_into_a_held_folder_is_refused(
    option: str, held: tuple[Path, subprocess.Popen], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, holder = held
    first_rows = '{"written by": "the first run"}'
    (out / "results.json").write_text(first_rows)
    code = main(compare_into(out, tmp_path, option))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.rstrip().splitlines()[-1] == (
        f"error: another deploybench run (pid {holder.pid}) is writing to {out}; "
        f"pass another {option} or wait for it to finish"
    )
    assert (out / "results.json").read_text() == first_rows  # nothing of the first run was touched
    assert (out / LOCK_NAME).is_file()  # the holder's lock is left in place


def test_the_lock_dies_with_its_holder(held: tuple[Path, subprocess.Popen]) -> None:
    out, holder = held
    with pytest.raises(OutputBusyError), exclusive_output(out):
        pass
    os.kill(holder.pid, signal.SIGKILL)  # a run killed outright: the kernel releases its flock
    holder.wait()
    with exclusive_output(out):
        assert (out / LOCK_NAME).read_text() == str(os.getpid())
    assert not (out / LOCK_NAME).exists()  # a finished run leaves no lock file behind


def test_a_run_holds_the_folder_while_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """compare takes the lock before the sweep and keeps it until its last output is written."""
    import deploybench.api as api

    out, seen = tmp_path / "out", []
    real_write = api.write_outputs

    def write_outputs(*args: object) -> None:
        # A second run, arriving while the first writes its outputs.
        with pytest.raises(OutputBusyError), exclusive_output(out):
            pass
        seen.append("refused")
        real_write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "write_outputs", write_outputs)
    assert main(compare_into(out, tmp_path)) == 0
    assert seen == ["refused"] and (out / "results.json").is_file() and not (out / LOCK_NAME).exists()
