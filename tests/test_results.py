"""The results document: typed rows that write back exactly what was read (schema version 1)."""

from __future__ import annotations

import copy

from deploybench.results import ArtifactRecord, CellKey, Results, Row, Status

OLD_ROW = {  # as deploybench wrote rows before they held typed parts
    "model": "m",
    "format": "onnx",
    "runtime": "onnxruntime",
    "device": "cpu",
    "precision": "fp32",
    "batch": 1,
    "status": "ok",
    "stats": {
        "n": 3,
        "min": 1.0,
        "mean": 2.0,
        "median": 2.0,
        "p90": 2.8,
        "p95": 2.9,
        "p99": 2.98,
        "max": 3.0,
        "std": 1.0,
        "cv": 0.5,
    },  # fmt: skip
    "memory": {
        "baseline_rss_mb": 10.14,
        "peak_rss_mb": 10.26,
        "rss_growth_mb": 0.1,
        "peak_device_mb": None,
        "rss_source": "kernel",
        "device_source": None,
    },  # fmt: skip
    "artifact": {"path": "/c/m-onnx", "size_mb": 1.5, "export_seconds": 2.0, "cache_hit": True, "manifest": {}},
}


def test_a_row_writes_back_what_it_read() -> None:
    crashed = dict(OLD_ROW, status="crashed", stats=None, memory={},
                   artifact={"cache_hit": False, "export_seconds": 2.0, "manifest": {"opset": 18}})  # fmt: skip
    for data in (OLD_ROW, crashed):
        row = Row.from_dict(copy.deepcopy(data))
        written = row.to_dict()
        for key in ("status", "stats", "memory", "artifact"):
            assert written[key] == (data[key] if data[key] is not None else None), key


def test_rows_hold_typed_parts_and_one_key() -> None:
    row = Row.from_dict(copy.deepcopy(OLD_ROW))
    assert row.status is Status.OK and row.stats is not None and row.stats.median == 2.0
    assert row.memory is not None and row.memory.rss_growth_mb == 0.1 and row.peak_rss_mb == 10.26
    assert isinstance(row.artifact, ArtifactRecord) and row.artifact_mb == 1.5
    assert row.key == CellKey("m", "onnx", "onnxruntime", "cpu", "fp32", 1) == CellKey.parse(str(row.key))
    again = Results.from_json(Results(rows=[row]).to_json()).rows[0]
    assert again == row


def test_the_growth_is_rounded_from_the_figures_before_rounding() -> None:
    from deploybench.memory import MemoryReport

    measured = MemoryReport(baseline_rss_mb=10.14, peak_rss_mb=10.26, peak_device_mb=None).rounded()
    assert measured.to_dict()["rss_growth_mb"] == 0.1  # not 10.3 - 10.1
    assert (measured.baseline_rss_mb, measured.peak_rss_mb) == (10.1, 10.3)
