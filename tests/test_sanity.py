"""Rows that ran "ok" but cannot be right: far slower than eager on the same model, device and batch (#16.4)."""

from __future__ import annotations

from deploybench.results import Results, Row
from deploybench.sanity import MISCONFIGURED, flag_slower_than_eager


def row(runtime: str, ms: float, batch: int = 1, precision: str = "fp32", status: str = "ok") -> Row:
    return Row(
        model="efficientnet_b0",
        format="aoti" if runtime == "aoti" else "pytorch",
        runtime=runtime,
        device="cpu",
        precision=precision,
        batch=batch,
        status=status,
        ms_per_image=ms,
        threads=2,
    )


def test_more_than_three_times_eager_is_flagged_with_the_ratio() -> None:
    results = Results(rows=[row("torch", 62.6), row("aoti", 1272.0), row("onnxruntime", 180.0)])
    flagged = flag_slower_than_eager(results)
    assert [r.runtime for r in flagged] == ["aoti"]  # 2.9x is within the limit, 20.3x is not
    assert results.rows[1].warnings == [
        "likely misconfiguration: 20.3x slower than eager (aoti 1272.000 ms/img vs torch fp32 62.600 ms/img, batch 1, "
        "2 threads); more than 3x usually means a thread count that does not fit the machine or an artifact built "
        "for other settings"
    ]
    assert results.rows[0].warnings == results.rows[2].warnings == []


def test_only_the_same_batch_and_device_compare_and_flags_are_recomputed() -> None:
    results = Results(rows=[row("torch", 10.0, batch=1), row("aoti", 50.0, batch=8), row("aoti", 50.0, batch=1)])
    assert [r.batch for r in flag_slower_than_eager(results)] == [1]  # batch 8 has no eager row to compare with
    results.rows[2].ms_per_image = 12.0  # e.g. resumed and measured again: the stale flag goes
    assert flag_slower_than_eager(results) == []
    assert not any(w.startswith(MISCONFIGURED) for r in results.rows for w in r.warnings)


def test_failed_rows_and_runs_without_eager_are_left_alone() -> None:
    results = Results(rows=[row("torch", 10.0), row("aoti", 100.0, status="error")])
    assert flag_slower_than_eager(results) == []
    assert flag_slower_than_eager(Results(rows=[row("aoti", 100.0)])) == []
