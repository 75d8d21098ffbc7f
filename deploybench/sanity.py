"""Plausibility checks on finished rows: numbers that ran "ok" but cannot be right.

A deployment runtime several times slower than PyTorch eager on the same model, device and
batch size is almost never the runtime's true speed: it is a thread count that does not
fit the machine, an artifact compiled for other settings, or a fallback path. Such a row
keeps its status and numbers, and gains a warning that says so and by how much.
"""

from __future__ import annotations

from deploybench.results import Results, Row, Status

SLOWER_THAN_EAGER_LIMIT = 3.0
MISCONFIGURED = "likely misconfiguration"


def eager_rows(results: Results) -> dict[tuple[str, str, int], Row]:
    """(model, device, batch) -> the PyTorch eager FP32 row that ran."""
    return {
        (r.model, r.device, r.batch): r
        for r in results.rows
        if r.runtime == "torch" and r.precision == "fp32" and r.status == Status.OK and r.ms_per_image
    }


def flag_slower_than_eager(results: Results, limit: float = SLOWER_THAN_EAGER_LIMIT) -> list[Row]:
    """Warn on every row more than ``limit`` times slower per image than eager; returns the rows flagged.

    Idempotent: earlier flags are recomputed, so a resumed run is judged on its final rows.
    """
    eager = eager_rows(results)
    flagged = []
    for row in results.rows:
        row.warnings = [w for w in row.warnings if not w.startswith(MISCONFIGURED)]
        base = eager.get((row.model, row.device, row.batch))
        if base is None or row is base or row.status != Status.OK or not row.ms_per_image or not base.ms_per_image:
            continue
        ratio = row.ms_per_image / base.ms_per_image
        if ratio > limit:
            row.warnings.append(
                f"{MISCONFIGURED}: {ratio:.1f}x slower than eager ({row.runtime} {row.ms_per_image:.3f} ms/img vs "
                f"torch fp32 {base.ms_per_image:.3f} ms/img, batch {row.batch}, {row.threads} threads); "
                f"more than {limit:g}x usually means a thread count that does not fit the machine or an artifact "
                "built for other settings"
            )
            flagged.append(row)
    return flagged
