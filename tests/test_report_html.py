"""The HTML report: structure of its charts and table, escaping, offline-ness, and a real browser render."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, replace
from html.parser import HTMLParser
from pathlib import Path

import helpers
import pytest

from deploybench.harness import Stats
from deploybench.parity import OutputParity, Parity, tolerance_for
from deploybench.report.html import parity_error, render_html
from deploybench.report.table import FASTEST_MARK, table_rows
from deploybench.results import Results, Row

EVIL = 'net<script>alert("x")</script>'
QUIET = "test_vit"
REPO = Path(__file__).resolve().parents[1]


def _parity(precision: str, error: float, reasons: tuple[str, ...] = ()) -> Parity:
    nonfinite = 1 if math.isnan(error) else 0
    output = OutputParity(
        name="logits",
        shape=[2, 10],
        max_abs_error=error,
        mean_abs_error=error / 2,
        max_rel_error=error,
        norm_error=error,
        cosine=1.0 - error,
        nonfinite=nonfinite,
    )
    return Parity(
        verdict="fail" if reasons else "pass",
        precision=precision,
        tolerance=asdict(tolerance_for(precision)),
        outputs=[output],
        task={"top1_agreement": 1.0, "top5_overlap": 1.0},
        reasons=list(reasons),
    )


def _ok(
    model: str,
    fmt: str,
    runtime: str,
    precision: str,
    batch: int,
    call_ms: float,
    error: float,
    reasons: list[str] = (),
) -> Row:  # type: ignore[assignment]
    samples = [call_ms * f for f in (0.98, 1.0, 1.0, 1.03)]
    return Row(
        model=model,
        format=fmt,
        runtime=runtime,
        device="cpu",
        precision=precision,
        batch=batch,
        precision_used=precision,
        timed_region="host to host",
        threads=2,
        stats=Stats.from_samples(samples),
        samples_ms=samples,
        ms_per_image=call_ms / batch,
        throughput=1000.0 * batch / call_ms,
        items_per_call=batch,
        window_seconds=1.0,
        first_inference_ms=call_ms * 3,
        load_seconds=0.2,
        memory=helpers.memory(500.0),
        artifact=helpers.artifact(1.5),
        parity=_parity(precision, error, reasons),
        runtime_info={"providers": ["CPUExecutionProvider"], "note": "<i>from the runtime</i>"},
    )


@pytest.fixture()
def results() -> Results:
    rows = [
        _ok(EVIL, "pytorch", "torch", "fp32", 1, 20.0, 0.0),
        _ok(EVIL, "pytorch", "torch", "fp32", 4, 60.0, 0.0),
        _ok(EVIL, "onnx", "onnxruntime", "fp32", 1, 8.0, 2e-7),
        _ok(
            EVIL,
            "onnx",
            "onnxruntime",
            "fp32",
            4,
            24.0,
            5e-3,
            ["logits error 5.00e-03 of its range > 1e-03 <see docs>"],
        ),
        _ok(EVIL, "ov", "openvino", "fp16", 1, 5.0, math.nan, ["logits has 1 NaN/Inf values"]),
        Row(
            model=EVIL,
            format="ov",
            runtime="openvino",
            device="cpu",
            precision="int8",
            batch=1,
            status="crashed",
            message="worker died: <b>SIGSEGV</b>",
        ),
        Row(
            model=QUIET,
            format="onnx",
            runtime="onnxruntime",
            device="cpu",
            precision="fp32",
            batch=1,
            status="error",
            message="export failed",
        ),
    ]
    env = {
        "cpu": {"model": "Test CPU <v2>", "usable_cores": 2, "features": {"avx2": True, "amx_int8": False}},
        "gpus": [],
        "libraries": {"torch": "2.15.0", "tensorrt": None},
        "os": "Linux",
    }
    return Results(config={"models": [EVIL, QUIET], "batches": [1, 4]}, environment=env, rows=rows)


def _charts(page: str) -> list[ET.Element]:
    """Every inline SVG chart, parsed as XML (so malformed markup fails here too)."""
    return [ET.fromstring(block) for block in re.findall(r"<svg class=\"chart.*?</svg>", page, flags=re.S)]


def _chart(page: str, title: str) -> ET.Element:
    found = [c for c in _charts(page) if c.findtext("title") == title]
    assert len(found) == 1, f"expected one chart titled {title!r}, found {len(found)}"
    return found[0]


def _series(chart: ET.Element) -> dict[str, list[ET.Element]]:
    return {g.get("data-name"): g.findall("circle") for g in chart.iter("g") if g.get("class") == "series"}


def test_latency_and_throughput_charts_have_one_line_per_format_runtime_precision(results: Results) -> None:
    page = render_html(results)
    for kind in ("latency", "throughput"):
        series = _series(_chart(page, f"{EVIL}: {kind}"))
        # The crashed int8 row has no measurement: it must not appear, nor break the chart.
        assert sorted(series) == ["onnx/onnxruntime/fp32", "ov/openvino/fp16", "pytorch/torch/fp32"]
        assert [len(series[n]) for n in sorted(series)] == [2, 1, 2]
        hollow = [c for points in series.values() for c in points if c.get("fill") == "#fff"]
        assert len(hollow) == 2  # the two rows that failed parity


def test_latency_points_are_placed_by_value(results: Results) -> None:
    series = _series(_chart(render_html(results), f"{EVIL}: latency"))
    torch_b1, torch_b4 = sorted(series["pytorch/torch/fp32"], key=lambda c: float(c.get("cx")))
    onnx_b1, _ = sorted(series["onnx/onnxruntime/fp32"], key=lambda c: float(c.get("cx")))
    # SVG y grows downwards: torch b1 (20 ms/img) sits above torch b4 (15) and onnxruntime b1 (8).
    assert float(torch_b1.get("cy")) < float(torch_b4.get("cy")) < float(onnx_b1.get("cy"))


def test_tradeoff_chart_has_a_point_per_checked_row_coloured_by_verdict(results: Results) -> None:
    chart = _chart(render_html(results), f"{EVIL}: speed vs parity error")
    points = [g for g in chart.iter("g") if g.get("class") == "point"]
    assert len(points) == 5
    assert sorted(g.get("data-group") for g in points) == ["fail", "fail", "pass", "pass", "pass"]
    labels = sorted(g.findtext("text") for g in points)
    assert labels == [
        "onnxruntime/fp32 b1",
        "onnxruntime/fp32 b4",
        "openvino/fp16 b1",
        "torch/fp32 b1",
        "torch/fp32 b4",
    ]
    ticks = [t.text for t in chart.iter("text") if t.text in ("0", "NaN/Inf")]
    assert ticks == ["0", "NaN/Inf"]  # exact zero and the non-finite row each get a labelled line


def test_model_without_measurements_gets_a_note_not_a_chart(results: Results) -> None:
    page = render_html(results)
    titles = [c.findtext("title") for c in _charts(page)]
    assert len(titles) == 3 and not any(QUIET in t for t in titles)
    assert "nothing to plot" in page


def test_parity_error_is_the_largest_output_error() -> None:
    row = _ok("m", "onnx", "onnxruntime", "fp32", 1, 1.0, 1e-6)
    assert row.parity is not None
    row.parity.outputs.append(replace(row.parity.outputs[0], norm_error=3e-4))
    assert parity_error(row) == 3e-4
    assert math.isnan(parity_error(_ok("m", "ov", "openvino", "fp16", 1, 1.0, math.nan)))  # type: ignore[arg-type]
    assert parity_error(Row("m", "onnx", "onnxruntime", "cpu", "fp32", 1, status="crashed")) is None
    infinite = _ok("m", "onnx", "onnxruntime", "fp32", 1, 1.0, 1e-6)
    assert infinite.parity is not None
    infinite.parity.outputs[0].norm_error = math.inf
    assert math.isnan(parity_error(infinite))  # type: ignore[arg-type]


def test_user_strings_are_escaped(results: Results) -> None:
    page = render_html(results)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page
    assert "<b>SIGSEGV</b>" not in page and "&lt;b&gt;SIGSEGV&lt;/b&gt;" in page
    assert "<i>from the runtime</i>" not in page
    assert "Test CPU &lt;v2&gt;" in page


def test_page_loads_nothing_from_elsewhere(results: Results) -> None:
    page = render_html(results)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"\bsrc\s*=", page) and "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


class _TableParser(HTMLParser):
    """Collects the body rows of table.results as (classes, cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self._in_results = self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._in_results = attributes.get("class") == "results"
        elif tag == "tbody" and self._in_results:
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append((attributes.get("class") or "", []))
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell))
            self._cell = None
        elif tag == "tbody":
            self._in_body = self._in_results = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_table_lists_every_row_with_highlights(results: Results) -> None:
    parser = _TableParser()
    parser.feed(render_html(results))
    expected = table_rows(results)
    assert len(parser.rows) == len(results.rows)
    for (classes, cells), want in zip(parser.rows, expected):
        # Same cells as the console table (the fastest mark is drawn as a star).
        assert cells[1:] == [str(v) for v in want[1:]]
        assert ("fastest" in classes.split()) == (want[0] == FASTEST_MARK)
    classes = [c.split() for c, _ in parser.rows]
    assert "fastest" in classes[1] and "fastest" in classes[2]  # torch b4 (onnxruntime b4 failed), onnxruntime b1
    assert "parity-fail" in classes[3] and "parity-fail" in classes[4]
    assert "not-ok" in classes[5] and "not-ok" in classes[6]


def test_each_row_has_details_with_its_reasons(results: Results) -> None:
    page = render_html(results)
    blocks = re.findall(r"<details id=\"row-(\d+)\".*?</details>", page, flags=re.S)
    assert blocks == [str(i) for i in range(len(results.rows))]
    failing = re.search(r"<details id=\"row-3\".*?</details>", page, flags=re.S).group(0)  # type: ignore[union-attr]
    assert "of its range &gt; 1e-03 &lt;see docs&gt;" in failing and "host to host" in failing
    assert "parity-fail" in failing.split(">")[0]


def test_report_command_writes_the_html(results: Results, tmp_path: Path) -> None:
    from deploybench.cli import main

    source, out = tmp_path / "results.json", tmp_path / "report.html"
    results.save(source)
    assert main(["report", str(source), "--html", str(out)]) == 0
    assert out.read_text() == render_html(Results.load(source))


def _browser() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_browser() is None, reason="no chromium or chromium-browser on PATH for a headless render")
def test_headless_browser_renders_a_non_blank_page(results: Results, tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image", reason="Pillow reads the screenshot")
    source, shot = tmp_path / "results.json", tmp_path / "shot.png"
    results.save(source)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(REPO / "scripts" / "screenshot_report.sh"), str(source), str(shot), "1200,1600"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with image_module.open(shot) as image:
        assert image.size == (1200, 1600)
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, tables and charts, not one flat colour
    # The failed-parity rows' red background reached the screen (#fde2e1).
    assert any(abs(r - 0xFD) <= 2 and abs(g - 0xE2) <= 2 and abs(b - 0xE1) <= 2 for _, (r, g, b) in colours)


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [_ok("solo", "onnx", "onnxruntime", "fp32", 1, 3.0, 0.0)],
        [_ok("solo", "onnx", "onnxruntime", "fp32", 2, 3.0, 1e-4), _ok("solo", "ov", "openvino", "fp32", 2, 3.0, 1e-4)],
    ],
    ids=["empty", "one-row", "identical-points"],
)
def test_degenerate_results_render_finite_charts(rows: list[Row]) -> None:
    page = render_html(Results(rows=rows))
    charts = _charts(page)
    assert len(charts) == (3 if rows else 0)
    assert "nan" not in " ".join(re.findall(r"\b(?:cx|cy|x|y|x1|y1|x2|y2|points)=\"([^\"]*)\"", page)).lower()
    for chart in charts:
        for circle in chart.iter("circle"):
            assert math.isfinite(float(circle.get("cx"))) and math.isfinite(float(circle.get("cy")))


def test_a_crafted_verdict_cannot_break_out_of_an_attribute() -> None:
    row = Row(
        model="m",
        format="onnx",
        runtime="onnxruntime",
        device="cpu",
        precision="fp32",
        batch=1,
        stats=helpers.stats(median=1.0),
        ms_per_image=1.0,
        throughput=1000.0,
        parity=helpers.parity('x"><img src=x onerror=alert(1)>'),
    )
    page = render_html(Results(rows=[row]))
    assert "<img" not in page and "onerror=alert(1)>" not in page.replace("&gt;", "")
