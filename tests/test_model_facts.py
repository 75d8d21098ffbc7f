"""Parameters, MACs and FLOPs per model, GFLOP/s per row: the figures model zoos compare by."""

from __future__ import annotations

import helpers
import pytest

from deploybench.model_facts import ModelFacts, model_facts
from deploybench.models import resolve
from deploybench.report.table import render_csv, render_markdown, render_table
from deploybench.results import Results, Row


def test_resnet50_counts_as_the_model_zoos_quote_it() -> None:
    facts = model_facts(resolve("resnet50"))
    assert facts.parameters == 25_557_032  # torchvision's and timm's ResNet-50
    assert facts.macs is not None and facts.macs / 1e9 == pytest.approx(4.09, abs=0.01)  # "4.1 GMACs"
    assert facts.flops == 2 * facts.macs
    assert facts.input_shape == (3, 224, 224)
    assert facts.describe() == "25.6 M parameters, 4.09 GMACs (8.18 GFLOPs) per image, input 3x224x224"


def test_rows_get_achieved_gflops_and_the_reports_show_the_facts() -> None:
    facts = ModelFacts(parameters=3_000_000, flops=8_000_000_000, input_shape=(3, 640, 640))
    assert facts.achieved_gflops(20.0) == pytest.approx(160.0)
    assert facts.achieved_gflops(None) is None
    assert ModelFacts(parameters=None, flops=None, input_shape=(3, 8, 8)).achieved_gflops(5.0) is None
    row = Row(
        "det",
        "onnx",
        "onnxruntime",
        "cpu",
        "fp32",
        1,
        ms_per_image=50.0,
        throughput=20.0,
        gflops_per_s=facts.achieved_gflops(20.0),
        stats=helpers.stats(median=50.0),
    )
    results = Results(rows=[row], models={"det": facts})
    again = Results.from_json(results.to_json())
    assert again.models == {"det": facts} and again.rows[0].gflops_per_s == pytest.approx(160.0)
    table = render_table(results)
    assert "GFLOP/s" in table.splitlines()[0] and "160.0" in table
    line = "det: 3.0 M parameters, 4.00 GMACs (8.00 GFLOPs) per image, input 3x640x640"
    assert line in table and line in render_markdown(results)
    header, values = (line.split(",") for line in render_csv(results).splitlines()[:2])
    record = dict(zip(header, values))
    assert record["gflops_per_s"] == "160.0" and record["parameters"] == "3000000" and record["gmacs"] == "4.0"


def test_results_written_before_model_facts_still_load() -> None:
    data = Results(rows=[Row("m", "onnx", "onnxruntime", "cpu", "fp32", 1)]).to_dict()
    del data["models"]
    assert Results.from_dict(data).models == {}


def test_html_draws_accuracy_against_speed_with_bubbles_sized_by_the_artifact() -> None:
    import re

    from deploybench.report.html import render_html

    def row(model: str, runtime: str, precision: str, ms: float, top1: float, size_mb: float) -> Row:
        return Row(
            model,
            runtime,
            runtime,
            "cpu",
            precision,
            1,
            ms_per_image=ms,
            throughput=1000 / ms,
            stats=helpers.stats(median=ms),
            samples_ms=[ms],
            artifact=helpers.artifact(size_mb),
            parity=helpers.parity("pass", precision, accuracy={"top1": top1, "delta_top1": 0.0}),
        )

    rows = [
        row("resnet50", "onnxruntime", "fp32", 20.0, 0.80, 97.0),
        row("resnet50", "openvino", "int8", 6.0, 0.79, 25.0),
        row("mobilenetv4", "onnxruntime", "fp32", 3.0, 0.73, 14.0),
    ]
    page = render_html(Results(rows=rows))
    chart = page[page.index("accuracy vs speed") :]
    radii = [float(r) for r in re.findall(r'<circle cx="[^"]+" cy="[^"]+" r="([0-9.]+)"', chart)[:3]]
    expected = [18.0, 4.0 + 14.0 * (25 / 97) ** 0.5, 4.0 + 14.0 * (14 / 97) ** 0.5]  # area ~ size on disk
    assert sorted(radii) == pytest.approx(sorted(expected), abs=0.06)
    assert "top-1 80.0 %" in chart and "artifact 97.0 MB" in chart
    assert "accuracy vs speed" not in render_html(Results(rows=[row("m", "onnxruntime", "fp32", 1.0, 0.5, 1.0)][:0]))
