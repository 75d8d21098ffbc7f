"""Console, CSV and Markdown renderings of hand-made rows."""

from __future__ import annotations

from deploybench.report.table import render_markdown, render_table
from deploybench.results import Results, Row


def _row(**changes) -> Row:
    base = dict(model="m", format="onnx", runtime="onnxruntime", device="cpu", precision="fp32", batch=1,
                stats={"median": 2.0}, ms_per_image=2.0, throughput=500.0,
                parity={"verdict": "pass", "precision": "fp32", "tolerance": {}, "outputs": [],
                        "task": {"top1_agreement": 1.0}, "reasons": []})
    base.update(changes)
    return Row(**base)


def test_markdown_cells_cannot_split_on_a_pipe() -> None:
    broken = _row(runtime="torch", format="pytorch", status="error", message="bad | worse", stats=None,
                  ms_per_image=None, throughput=None, parity=None)
    text = render_markdown(Results(rows=[_row(), broken]))
    error_line = next(line for line in text.splitlines() if "bad" in line)
    header = next(line for line in text.splitlines() if "model" in line and "runtime" in line)
    assert r"bad \| worse" in error_line
    assert error_line.count(" | ") == header.count(" | ")  # same number of cells as the header


def test_speedup_is_against_the_eager_row_of_the_same_batch() -> None:
    eager = _row(runtime="torch", format="pytorch", ms_per_image=4.0, stats={"median": 4.0})
    table = render_table(Results(rows=[eager, _row()]))
    onnx_line = next(line for line in table.splitlines() if "onnxruntime" in line)
    assert "2.00x" in onnx_line and onnx_line.startswith("*")  # fastest faithful row, twice as fast


def test_status_says_why_a_row_needs_a_look() -> None:
    from deploybench.report.table import render_csv

    rows = [_row(model="quiet"), _row(model="noisy", warnings=["noisy: coefficient of variation 15% > 10%"]),
            _row(model="hot", warnings=["GPU throttled during the timed window (sw_thermal_slowdown)",
                                        "GPU clocked down during the timed window: SM clock 1500 to 1980 MHz"]),
            _row(model="host", warnings=["host- or launch-bound: 1.0% of the H100 SXM's dense fp32 peak"],
                 utilization={"achieved_tflops": 0.67, "share_of_peak": 0.01},
                 runtime_info={"nvml": {"energy_per_image_mj": 12.5}})]
    lines = {line.split()[0 if not line.startswith("*") else 1]: line for line in
             render_table(Results(rows=rows)).splitlines()[2:-1]}
    assert lines["quiet"].rstrip().endswith(" ok")
    assert lines["noisy"].rstrip().endswith("ok (noisy)")
    assert lines["hot"].rstrip().endswith("ok (throttled)")  # two warnings, one note
    assert lines["host"].rstrip().endswith("ok (host-bound)")
    csv_lines = render_csv(Results(rows=rows)).splitlines()
    assert csv_lines[0].endswith("achieved_tflops,share_of_peak,energy_per_image_mj")
    assert csv_lines[-1].endswith("0.67,0.01,12.5")
