"""Worker process entry: ``python -m deploybench.worker CELL.json ROW.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from deploybench.artifact import write_json_atomic
from deploybench.cell import Cell, run_cell


def main(argv: list[str]) -> int:
    cell_file, row_file = Path(argv[0]), Path(argv[1])
    row = run_cell(Cell.from_dict(json.loads(cell_file.read_text())))
    write_json_atomic(row_file, row.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
