"""Precision triage on tiny models with one deliberately precision-sensitive layer (tests/precision_models.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from deploybench import registry
from deploybench.cli import main
from deploybench.errors import TriageError
from deploybench.exporters.base import ExportOptions
from deploybench.models import resolve
from deploybench.results import Results, Row
from deploybench.triage import Triage, TriageOptions, triage
from deploybench.triage.metrics import ERROR_FLOOR, centred_cosine, error_growth, spread_normalised_error
from deploybench.triage.report import LayerError
from deploybench.triage.taps import GraphLayer
from deploybench.triage.walk import cap, jump_rule, passes, walk

TESTS = str(Path(__file__).parent)
OVERFLOW = "precision_models:overflow_net"  # fp16: `amplify` goes past 65504
OUTLIER = "precision_models:outlier_net"  # int8: `mix` reads next to an outlier channel


def needs(*names: str) -> pytest.MarkDecorator:
    missing = [n for n in names if not registry.exporters.availability(n).ok]
    return pytest.mark.skipif(bool(missing), reason=f"needs the {', '.join(missing)} exporter")


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The precision models importable here and in the worker processes that --fix starts."""
    monkeypatch.syspath_prepend(TESTS)
    monkeypatch.setenv("PYTHONPATH", TESTS)


# -- metrics ----------------------------------------------------------------------------


def test_error_is_relative_to_the_spread_not_to_a_shared_offset() -> None:
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(4, 100))
    noisy = signal + 0.1 * rng.normal(size=signal.shape)
    # A large constant both share must not make the same error look smaller.
    assert spread_normalised_error(signal + 1e4, noisy + 1e4) == pytest.approx(spread_normalised_error(signal, noisy))
    assert spread_normalised_error(signal, noisy) == pytest.approx(0.1, rel=0.2)
    assert math.isinf(spread_normalised_error(signal, np.where(signal > 2, np.inf, signal)))


def test_centred_cosine_ignores_what_every_image_shares() -> None:
    rng = np.random.default_rng(1)
    shared = 100 * rng.normal(size=(1, 50))
    reference = shared + rng.normal(size=(8, 50))
    unrelated = shared + rng.normal(size=(8, 50))
    plain = float(np.dot(reference.ravel(), unrelated.ravel()) / np.linalg.norm(reference) / np.linalg.norm(unrelated))
    assert plain > 0.99  # the plain cosine calls two unrelated outputs equal
    assert abs(centred_cosine(reference, unrelated)) < 0.3
    assert centred_cosine(reference, reference) == pytest.approx(1.0)


def test_error_growth_starts_at_the_floor_and_handles_nan() -> None:
    assert error_growth(0.5, []) == pytest.approx(0.5 / ERROR_FLOOR)
    assert error_growth(0.2, [0.1, 0.05]) == pytest.approx(2.0)
    assert math.isinf(error_growth(math.inf, [0.1]))
    assert error_growth(math.inf, [math.inf]) == 1.0


def test_passes_stay_under_the_budget_and_cap_keeps_the_first_jump() -> None:
    layers = [GraphLayer(f"l{i}", "Conv", None, (), 1000) for i in range(10)]
    groups = list(passes(layers, images=2, budget=8000))  # 2 sides x 2 images x 1000 B = 4000 B a layer
    assert [len(g) for g in groups] == [2] * 5 and sum(groups, []) == layers
    records = [LayerError(i, f"l{i}", "Conv", None, 0.1, 0.9, 1.0 + (i == 3) * 9 + (i == 7) * 20) for i in range(10)]
    kept = cap(records, 2, must_keep=records[3])
    assert [r.name for r in kept] == ["l3", "l7"]


# -- the two sensitive layers, named ---------------------------------------------------------


@needs("onnx")
def test_onnx_fp16_triage_names_the_overflowing_layer_and_its_module(on_path, cache) -> None:
    spec = resolve(OVERFLOW)
    cache.get_or_export(registry.exporters.get("onnx")(), spec, ExportOptions(precision="fp16"))
    result = triage(spec, TriageOptions(format="onnx", precision="fp16"), cache)
    assert result.verdict.startswith("fail") and result.runtime == "onnxruntime"
    assert result.first_jump is not None and result.first_jump.module == "amplify"
    assert result.first_jump.op == "Mul" and result.first_jump.nonfinite > 0
    assert result.remedy is not None and result.first_jump.name in result.remedy.keep
    assert result.remedy.verdict_after.startswith("pass")
    # Streaming one layer per pass finds the same figures as one pass over everything.
    from deploybench.sweep import SweepConfig, parity_inputs
    from deploybench.triage.diagnose import artifacts_for, open_tap

    options = TriageOptions(format="onnx", precision="fp16")
    tap = open_tap("onnxruntime", *artifacts_for(cache, spec, options), spec, options)
    inputs, _ = parity_inputs(spec, SweepConfig(models=(spec.name,)))
    one_by_one = walk(tap, inputs, jump_rule("fp16"), pass_bytes=1)
    assert [(r.name, r.error) for r in one_by_one.layers] == [(r.name, r.error) for r in result.layers]
    # The table keeps what it is told to, and the first jump among them.
    capped = walk(tap, inputs, jump_rule("fp16"), keep_layers=2)
    assert len(capped.layers) == 2 and capped.layers_total == len(result.layers)
    assert capped.first_jump in capped.layers


@needs("openvino")
def test_openvino_int8_triage_names_the_layer_next_to_the_outlier(on_path, cache) -> None:
    spec = resolve(OUTLIER)
    cache.get_or_export(registry.exporters.get("openvino")(), spec, ExportOptions(precision="int8"))
    result = triage(spec, TriageOptions(format="ov", precision="int8"), cache)
    assert result.verdict.startswith("fail")
    assert result.first_jump is not None and result.first_jump.module == "mix"
    assert result.first_jump.op == "Convolution"
    # The layers before it, the outlier's own among them, stay exact enough.
    before = [layer for layer in result.layers if layer.depth < result.first_jump.depth]
    assert before and all(layer.error is not None and layer.error < 0.05 for layer in before)
    assert result.remedy is not None and result.first_jump.name in result.remedy.keep
    assert Triage.from_dict(json.loads(json.dumps(result.to_dict()))) == result


@needs("openvino")
def test_a_kept_layer_the_graph_does_not_have_is_refused(on_path, cache) -> None:
    from deploybench.errors import ExportError

    with pytest.raises(ExportError, match="does not have; use the layer names deploybench triage prints"):
        cache.get_or_export(
            registry.exporters.get("openvino")(),
            resolve(OUTLIER),
            ExportOptions(precision="int8", keep_fp32=("no_such_layer",)),
        )


# -- --fix: before and after, measured ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, fmt, precision, module",
    [
        pytest.param(OVERFLOW, "onnx", "fp16", "amplify", marks=needs("onnx")),
        pytest.param(OUTLIER, "openvino", "int8", "mix", marks=needs("openvino")),
    ],
)
def test_fix_brings_the_row_back_to_pass_at_a_measured_cost(
    on_path, tmp_path, capsys, model, fmt, precision, module
) -> None:
    cache = str(tmp_path / "cache")
    assert main(["export", model, "--to", fmt, "--precision", precision, "--cache", cache]) == 0
    out = tmp_path / "triage.json"
    code = main(
        [
            "triage",
            model,
            "--format",
            fmt,
            "--precision",
            precision,
            "--fix",
            "--quick",
            "--cache",
            cache,
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    result = Triage.from_dict(json.loads(out.read_text()))
    assert result.first_jump is not None and result.first_jump.module == module
    before, after = result.fix
    assert (before.variant, before.verdict) == ("before", "fail")
    assert (after.variant, after.verdict, after.keep) == ("after", "pass", len(result.remedy.keep))
    assert before.ms_per_image and after.ms_per_image  # the cost is measured, both sides
    assert "<- first jump" in printed and "speed cost of the fix" in printed


# -- bad input ------------------------------------------------------------------------------


def test_no_artifact_says_how_to_export_it(on_path, tmp_path, capsys) -> None:
    code = main(["triage", OVERFLOW, "--format", "onnx", "--precision", "fp16", "--cache", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"deploybench export {OVERFLOW} --to onnx --precision fp16" in err


def test_a_precision_the_format_has_no_artifact_for(on_path, tmp_path, capsys) -> None:
    code = main(["triage", OVERFLOW, "--format", "onnx", "--precision", "int8", "--cache", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "onnx has no int8 artifacts" in err and "--precision fp16" in err


@needs("onnx")
def test_a_graph_without_shared_intermediates_is_a_message(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from deploybench.artifact import Artifact
    from deploybench.triage.diagnose import open_tap

    # Unnamed nodes: nothing ties a tensor of one graph to the other's.
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["mid"]), helper.make_node("Neg", ["mid"], ["output"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])],
    )
    artifacts = []
    for precision in ("fp32", "fp16"):
        folder = tmp_path / precision
        folder.mkdir()
        onnx.save(helper.make_model(graph), str(folder / "model.onnx"))
        artifacts.append(Artifact(format="onnx", path=folder, main_file="model.onnx", precision=precision))
    with pytest.raises(TriageError, match="exposes no intermediate tensors"):
        open_tap("onnxruntime", *artifacts, None, TriageOptions("onnx", "fp16"))


# -- the report ------------------------------------------------------------------------------


def test_html_row_details_plot_error_by_depth(on_path, cache) -> None:
    from deploybench.report.html import render_html

    layers = [
        LayerError(0, "a", "Conv", "stem", 1e-3, 0.999, 10.0),
        LayerError(1, "b", "Mul", "amplify", None, None, None, 7),
        LayerError(2, "c", "Conv", "shrink", 0.4, 0.88, 0.0),
    ]
    result = Triage(
        model="m",
        format="onnx",
        precision="fp16",
        runtime="onnxruntime",
        reference="fp32 graph",
        images=8,
        rule=jump_rule("fp16"),
        layers_total=3,
        layers=layers,
        first_jump=layers[1],
        verdict="fail",
    )
    row = Row(
        model="m",
        format="onnx",
        runtime="onnxruntime",
        device="cpu",
        precision="fp16",
        batch=1,
        triage=result.to_dict(),
    )
    html = render_html(Results(rows=[row]))
    details = html[html.index('<details id="row-0"') :]
    assert "Precision triage" in details and "error by layer" in details
    assert details.count('class="point"') == 3 and "b (module amplify)" in details
    assert Results.from_json(Results(rows=[row]).to_json()).rows[0].triage == result.to_dict()


@needs("onnx")
def test_compare_triage_attaches_a_triage_to_rows_that_fail_parity(on_path, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "--models",
            OVERFLOW,
            "--runtimes",
            "onnxruntime",
            "--precisions",
            "fp16",
            "--batch",
            "1",
            "--quick",
            "--no-isolate",
            "--triage",
            "--allow-mismatch",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    (row,) = Results.load(out / "results.json").rows
    assert row.parity_verdict == "fail" and row.triage is not None
    assert Triage.from_dict(row.triage).first_jump.module == "amplify"
    assert "first jump: node_" in capsys.readouterr().out
