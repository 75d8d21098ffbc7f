"""Worker process entry: ``python -m deploybench.worker CELLS.json OUT_DIR``.

Measures the cells in order (one artifact at its batch sizes) and leaves in ``OUT_DIR``:
``row-<i>.json`` as each cell finishes, so a crash loses only the cell it happened in, and
``phase``, naming the cell and what it is doing, for the parent's progress display.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from deploybench.cell import Cell, run_cells
from deploybench.files import write_json_atomic

PHASE_FILE = "phase"


def row_file(out_dir: Path, index: int) -> Path:
    return out_dir / f"row-{index}.json"


def write_phase(out_dir: Path, index: int, phase: str) -> None:
    temporary = out_dir / f"{PHASE_FILE}.tmp"
    temporary.write_text(f"{index} {phase}")
    os.replace(temporary, out_dir / PHASE_FILE)  # the parent never reads half a line


def read_phase(out_dir: Path) -> tuple[int, str] | None:
    try:
        index, phase = (out_dir / PHASE_FILE).read_text().split(" ", 1)
        return int(index), phase
    except (OSError, ValueError):
        return None


def main(argv: list[str]) -> int:
    cells_file, out_dir = Path(argv[0]), Path(argv[1])
    cells = [Cell.from_dict(data) for data in json.loads(cells_file.read_text())]
    run_cells(
        cells,
        on_phase=lambda index, phase: write_phase(out_dir, index, phase),
        on_row=lambda index, row: write_json_atomic(row_file(out_dir, index), row.to_dict()),
    )
    return 0


def exit_now(code: int) -> None:
    """End the worker without the interpreter's teardown: every row is written and nothing is
    left to save, while the parent waits for the runtimes' libraries to unload."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
