"""Run cells in fresh worker processes, with a timeout; crashes and hangs become row statuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from deploybench.cell import Cell, run_cell
from deploybench.results import Row

DEFAULT_TIMEOUT_S = 600.0


def _worker_env() -> dict[str, str]:
    """The parent's import path, so plugins registered from tests import in the worker too."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env["PYTHONPATH"]] if env.get("PYTHONPATH") else paths)
    return env


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def run_isolated(cell: Cell, timeout_s: float = DEFAULT_TIMEOUT_S) -> Row:
    """Run ``cell`` in a new process and read its row back."""
    with tempfile.TemporaryDirectory(prefix="deploybench-cell-") as tmp:
        cell_file, row_file, log_file = Path(tmp, "cell.json"), Path(tmp, "row.json"), Path(tmp, "worker.log")
        cell_file.write_text(json.dumps(cell.to_dict()))
        with open(log_file, "w") as log:
            # A new session: a terminal Ctrl-C reaches the parent, which then ends the worker.
            proc = subprocess.Popen([sys.executable, "-m", "deploybench.worker", str(cell_file), str(row_file)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=_worker_env(), start_new_session=True)
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill(proc)
                return _failed(cell, "timeout", f"no result within {timeout_s:.0f} s; raise --timeout or check the runtime")
            except BaseException:  # KeyboardInterrupt, SystemExit: take the worker down with us
                _kill(proc)
                raise
        if row_file.is_file():
            return Row.from_dict(json.loads(row_file.read_text()))
        if returncode < 0:
            name = signal.Signals(-returncode).name
            why = " (the kernel's out-of-memory killer sends this)" if returncode == -signal.SIGKILL else ""
            return _failed(cell, "crashed", f"worker died with {name}{why}; last output: {_tail(log_file)}")
        return _failed(cell, "crashed", f"worker exited with code {returncode}; last output: {_tail(log_file, 2)}")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _failed(cell: Cell, status: str, message: str) -> Row:
    row = cell.empty_row()
    row.status, row.message = status, message
    return row


def run(cell: Cell, isolate: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> Row:
    return run_isolated(cell, timeout_s) if isolate else run_cell(cell)
