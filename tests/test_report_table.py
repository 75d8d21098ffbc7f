"""Console, CSV and Markdown renderings of hand-made rows."""

from __future__ import annotations

import helpers

from deploybench.report.table import render_markdown, render_table
from deploybench.results import Results, Row


def _row(**changes) -> Row:
    base = {
        "model": "m",
        "format": "onnx",
        "runtime": "onnxruntime",
        "device": "cpu",
        "precision": "fp32",
        "batch": 1,
        "stats": helpers.stats(median=2.0),
        "ms_per_image": 2.0,
        "throughput": 500.0,
        "parity": helpers.parity("pass", task={"top1_agreement": 1.0}),
    }
    base.update(changes)
    return Row(**base)


def test_markdown_cells_cannot_split_on_a_pipe() -> None:
    broken = _row(
        runtime="torch",
        format="pytorch",
        status="error",
        message="bad | worse",
        stats=None,
        ms_per_image=None,
        throughput=None,
        parity=None,
    )
    text = render_markdown(Results(rows=[_row(), broken]))
    error_line = next(line for line in text.splitlines() if "bad" in line)
    header = next(line for line in text.splitlines() if "model" in line and "runtime" in line)
    assert r"bad \| worse" in error_line
    assert error_line.count(" | ") == header.count(" | ")  # same number of cells as the header


def test_speedup_is_against_the_eager_row_of_the_same_batch() -> None:
    eager = _row(runtime="torch", format="pytorch", ms_per_image=4.0, stats=helpers.stats(median=4.0))
    table = render_table(Results(rows=[eager, _row()]))
    onnx_line = next(line for line in table.splitlines() if "onnxruntime" in line)
    assert "2.00x" in onnx_line and onnx_line.startswith("*")  # fastest faithful row, twice as fast


def test_table_shows_the_tail_threads_and_requests_in_flight() -> None:
    latency = _row(threads=2, stats=helpers.stats(median=2.0, p90=2.5, p99=3.125))
    throughput = _row(
        runtime="openvino",
        format="openvino",
        batch=8,
        threads=2,
        stats=helpers.stats(median=8.0, p90=9.0, p99=12.0),
        runtime_info={"mode": "throughput", "streams": 2, "infer_requests": 2},
    )
    lines = render_table(Results(rows=[latency, throughput])).splitlines()
    header = lines[0].split()
    for name in ("p50", "p90", "p99", "threads", "streams/req"):
        assert name in header
    assert header.index("p90") == header.index("p50") + 2 and header.index("p99") == header.index("p90") + 2

    def cells(needle: str) -> list[str]:
        return next(line for line in lines if needle in line).split()

    one, many = cells("onnxruntime"), cells("openvino")
    assert one[one.index("1") + 1 :][:2] == ["2", "-"]  # after the batch: threads, no parallel requests
    assert "2.500" in one and "3.125" in one
    assert many[many.index("8") + 1 :][:2] == ["2", "2/2"]
    assert "9.000" in many and "12.000" in many


def test_a_non_pytorch_parity_reference_is_named_under_the_table() -> None:
    results = Results(
        rows=[
            _row(model="net", parity_reference="onnxruntime-fp32 (no PyTorch module)"),
            _row(model="resnet", parity_reference="pytorch-fp32"),
        ]
    )
    for text in (render_table(results), render_markdown(results)):
        assert "parity of net is against onnxruntime-fp32 (no PyTorch module)" in text
        assert "parity of resnet" not in text  # the usual reference goes without saying


def test_status_says_why_a_row_needs_a_look() -> None:
    from deploybench.report.table import render_csv

    rows = [
        _row(model="quiet"),
        _row(model="noisy", warnings=["noisy: coefficient of variation 15% > 10%"]),
        _row(
            model="hot",
            warnings=[
                "GPU throttled during the timed window (sw_thermal_slowdown)",
                "GPU clocked down during the timed window: SM clock 1500 to 1980 MHz",
            ],
        ),
        _row(
            model="host",
            warnings=["host- or launch-bound: 1.0% of the H100 SXM's dense fp32 peak"],
            utilization={"achieved_tflops": 0.67, "share_of_peak": 0.01},
            runtime_info={"nvml": {"energy_per_image_mj": 12.5}},
        ),
    ]
    lines = {
        line.split()[0 if not line.startswith("*") else 1]: line
        for line in render_table(Results(rows=rows)).splitlines()[2:-1]
    }
    assert lines["quiet"].rstrip().endswith(" ok")
    assert lines["noisy"].rstrip().endswith("ok (noisy)")
    assert lines["hot"].rstrip().endswith("ok (throttled)")  # two warnings, one note
    assert lines["host"].rstrip().endswith("ok (host-bound)")
    csv_lines = render_csv(Results(rows=rows)).splitlines()
    assert csv_lines[0].endswith("achieved_tflops,share_of_peak,energy_per_image_mj")
    assert csv_lines[-1].endswith("0.67,0.01,12.5")
