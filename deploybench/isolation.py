"""Run cells in worker processes, with a timeout; crashes and hangs become row statuses.

One worker measures one artifact at each of its batch sizes: the runtime, the model code and
the artifact's imports are paid once (parity is still checked at every batch). A crash, hang or
out-of-memory kill costs only the cell it happened in: the worker's finished rows are kept,
and the cells after it run in a fresh worker. ``--isolate cell`` gives every cell its own.
How a worker process starts (forked by the zygote, or a fresh interpreter) is
``deploybench.spawn``'s part.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from deploybench.cell import Cell, run_cells
from deploybench.results import Row, Status
from deploybench.spawn import kill_worker, start_worker
from deploybench.worker import read_phase, row_file

DEFAULT_TIMEOUT_S = 600.0
POLL_S = 0.05  # how often the parent looks for finished rows and the worker's phase
EXIT_GRACE_S = 30.0  # a worker that wrote every row gets this long to exit before it is killed

OnPhase = Callable[[Cell, str], None]
OnRow = Callable[[Row], None]


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _one_worker(cells: list[Cell], timeout_s: float, on_phase: OnPhase, on_row: OnRow) -> int:
    """Run ``cells`` in one worker until it ends; returns how many rows it finished.

    Every cell has ``timeout_s`` from when the one before it finished. When the worker dies or
    hangs, the cell it was on gets the status (``crashed`` or ``timeout``) and is counted too.
    """
    with tempfile.TemporaryDirectory(prefix="deploybench-cell-") as tmp:
        out = Path(tmp)
        cells_file, log_file = out / "cells.json", out / "worker.log"
        cells_file.write_text(json.dumps([cell.to_dict() for cell in cells]))
        finished, seen_phase = 0, None
        log_file.touch()
        proc = start_worker(cells, cells_file, out, log_file, timeout_s)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                returncode = proc.poll()
                while finished < len(cells) and row_file(out, finished).is_file():
                    on_row(Row.from_dict(json.loads(row_file(out, finished).read_text())))
                    finished += 1
                    deadline = time.monotonic() + timeout_s
                if returncode is not None or finished == len(cells):
                    break
                phase = read_phase(out)
                if phase is not None and phase != seen_phase and phase[0] == finished:
                    seen_phase = phase
                    on_phase(cells[finished], phase[1])
                if time.monotonic() > deadline:
                    kill_worker(proc)
                    if row_file(out, finished).is_file():  # written just before the kill: keep it
                        on_row(Row.from_dict(json.loads(row_file(out, finished).read_text())))
                    else:
                        on_row(
                            _failed(
                                cells[finished],
                                Status.TIMEOUT,
                                f"no result within {timeout_s:.0f} s; raise --timeout or check the runtime",
                            )
                        )
                    return finished + 1
                time.sleep(POLL_S)
            proc.wait(timeout=EXIT_GRACE_S)  # every row is in; a worker stuck in its teardown is ended
        except subprocess.TimeoutExpired:
            kill_worker(proc)
        except BaseException:  # KeyboardInterrupt, SystemExit: take the worker down with us
            kill_worker(proc)
            raise
        if finished == len(cells):
            return finished
        if returncode is not None and returncode < 0:
            name = signal.Signals(-returncode).name
            why = " (the kernel's out-of-memory killer sends this)" if returncode == -signal.SIGKILL else ""
            message = f"worker died with {name}{why}; last output: {_tail(log_file)}"
        else:
            message = f"worker exited with code {returncode}; last output: {_tail(log_file, 2)}"
        on_row(_failed(cells[finished], Status.CRASHED, message))
        return finished + 1


def run_isolated(
    cells: list[Cell],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_phase: OnPhase = lambda cell, phase: None,
    on_row: OnRow = lambda row: None,
) -> list[Row]:
    """Run ``cells`` in worker processes, a fresh one after any crash or hang; rows in cell order."""
    rows: list[Row] = []

    def keep(row: Row) -> None:
        rows.append(row)
        on_row(row)

    start = 0
    while start < len(cells):
        start += _one_worker(cells[start:], timeout_s, on_phase, keep)
    return rows


def _failed(cell: Cell, status: Status, message: str) -> Row:
    row = cell.empty_row()
    row.status, row.message = status, message
    return row


def run_group(
    cells: list[Cell],
    isolate: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_phase: OnPhase = lambda cell, phase: None,
    on_row: OnRow = lambda row: None,
) -> list[Row]:
    """Measure one artifact's cells: in a worker process, or in this one (``--no-isolate``)."""
    if isolate:
        return run_isolated(cells, timeout_s, on_phase, on_row)
    return run_cells(
        cells, on_phase=lambda index, phase: on_phase(cells[index], phase), on_row=lambda index, row: on_row(row)
    )


def run(cell: Cell, isolate: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> Row:
    """One cell on its own process (triage's before and after rows)."""
    return run_isolated([cell], timeout_s)[0] if isolate else run_cells([cell])[0]
