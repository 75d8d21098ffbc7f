"""A whole comparison through the API: isolated cells, parity beside speed, exact JSON round trip."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from deploybench.artifact import Artifact
from deploybench.cell import Cell, run_cell
from deploybench.harness import MeasurePolicy
from deploybench.report.table import FASTEST_MARK, FOOTNOTE, fastest_faithful, render_csv, render_markdown, render_table
from deploybench.results import Results, Row
from deploybench.sweep import Sweep, SweepConfig, build_reference, parity_inputs, parse_batches, plan


@pytest.fixture(scope="module")
def swept(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    config = SweepConfig(
        models=("test_resnet",),
        runtimes=("torch", "onnxruntime", "openvino"),
        precisions=("fp32", "int8"),
        batches=(1, 2),
        policy=MeasurePolicy.quick(),
    )
    results = Results(config={"test": True}, environment={"cpu": {"model": "test"}})
    sweep = Sweep(config, cache, results, out / "results.json", work_dir=out / "refs")
    sweep.run()
    return sweep, out


def test_every_planned_cell_is_a_row(swept) -> None:
    sweep, _ = swept
    cells = {(r.runtime, r.precision, r.batch) for r in sweep.results.rows}
    assert cells == {(rt, "fp32", b) for rt in ("torch", "onnxruntime", "openvino") for b in (1, 2)} | {
        ("openvino", "int8", 1),
        ("openvino", "int8", 2),
    }
    assert all(r.status == "ok" for r in sweep.results.rows), [r.message for r in sweep.results.rows]
    assert any("torch int8" in str(reason) for reason in sweep.skipped)


def test_rows_carry_speed_memory_parity_and_setting(swept) -> None:
    for row in swept[0].results.rows:
        assert row.stats.median > 0 and len(row.samples_ms) == row.stats.n >= 5
        assert row.ms_per_image == pytest.approx(row.stats.median / (row.items_per_call * row.requests_in_flight))
        assert row.memory.peak_rss_mb >= row.memory.baseline_rss_mb > 0
        assert row.threads and row.precision_used and row.timed_region
        assert row.parity.verdict == "pass", row.parity.reasons
        if row.runtime == "openvino" and row.requests_in_flight == 1:  # benchmark_app's clock, kept beside
            assert row.own_clock and row.own_stats and row.own_stats.median <= row.stats.median
            assert Row.from_dict(row.to_dict()).own_stats == row.own_stats
    int8 = [r for r in swept[0].results.rows if r.precision == "int8"]
    assert all(r.precision_used == "int8" and r.artifact.size_mb > 0 for r in int8)


def test_results_file_round_trips_exactly(swept) -> None:
    sweep, out = swept
    loaded = Results.load(out / "results.json")
    assert loaded.to_dict() == json.loads(json.dumps(sweep.results.to_dict()))
    assert Results.from_json(loaded.to_json()).to_dict() == loaded.to_dict()


def test_renderers(swept) -> None:
    results = swept[0].results
    table = render_table(results)
    lines = table.splitlines()
    weights = [line for line in lines if line.startswith("weights of ")]  # which weights ran, once per model
    assert weights == ["weights of test_resnet: random (seed 0)"]
    assert "\n".join(lines[: lines.index(FOOTNOTE)]).count("test_resnet") == len(results.rows)
    assert any(line.startswith("parity inputs: test_resnet: 8 crops") for line in lines)
    assert (
        sum(line.startswith(FASTEST_MARK) and "test_resnet" in line for line in table.splitlines())
        == len(fastest_faithful(results))
        == 2
    )
    assert "1.00x" in table  # the eager row is its own baseline
    csv_lines = render_csv(results).strip().splitlines()
    assert len(csv_lines) == len(results.rows) + 1
    assert render_markdown(results).count("| test_resnet") == len(results.rows)


def test_perturbed_artifact_fails_parity(cache, tiny, artifacts, tmp_path) -> None:
    """A broken export (noise on the stem convolution every output depends on) must fail parity."""
    folder = tmp_path / "perturbed"
    shutil.copytree(artifacts.get("onnx").path, folder)
    model = onnx.load(str(folder / "model.onnx"))
    # Not a residual-branch weight: timm zero-initialises those branches' last norm, hiding changes.
    stem = next(t for t in model.graph.initializer if t.name == "conv1.0.weight")
    weights = numpy_helper.to_array(stem)
    noise = np.random.default_rng(0).normal(scale=0.2 * weights.std(), size=weights.shape).astype(weights.dtype)
    stem.CopyFrom(numpy_helper.from_array(weights + noise, stem.name))
    onnx.save(model, str(folder / "model.onnx"))
    artifact = Artifact.load(folder)
    artifact.record_files()
    artifact.save()
    config = SweepConfig(models=("test_resnet",))
    inputs, origin = parity_inputs(tiny, config)
    reference = build_reference(tiny, inputs, tmp_path / "ref.npz", origin=origin)
    row = run_cell(
        Cell(
            model=tiny.ref,
            model_name=tiny.name,
            task="classification",
            format="onnx",
            runtime="onnxruntime",
            batch=2,
            artifact_dir=str(folder),
            reference=str(reference),
            policy=MeasurePolicy.quick(),
        )
    )
    assert row.status == "ok"
    assert row.parity.verdict == "fail" and row.parity.reasons


def test_plan_explains_skips() -> None:
    cells, skipped = plan(SweepConfig(models=("m",), runtimes=("onnxruntime", "openvino"), precisions=("bf16",)), "m")
    assert [(c.runtime, c.artifact_precision) for c in cells] == [("openvino", "fp32")]  # bf16 compute on an FP32 IR
    assert skipped and "onnxruntime" in str(skipped[0]) and "bf16" in str(skipped[0])


def test_parse_batches() -> None:
    assert parse_batches("1,8,32") == (1, 8, 32)
    assert parse_batches("auto") == "auto"
    for bad in ("1,x", "0", "", "1,,8", "1,8,"):
        with pytest.raises(Exception, match="malformed batch list"):
            parse_batches(bad)


@pytest.mark.parametrize(
    "change, error",
    [
        ({"models": ()}, "no model to run"),
        ({"runtimes": ("torch", "onnxrt")}, "unknown runtime 'onnxrt'"),
        ({"formats": ("onx",)}, "unknown format 'onx'"),
        ({"precisions": ("int4",)}, "unknown precision 'int4'"),
        ({"threads": 0}, "--threads 0 is not a thread count"),
    ],
)
def test_config_validation_refuses_before_any_work(change: dict, error: str) -> None:
    """#16.8-10: the library checks names and settings; the CLI only prints what it raises."""
    with pytest.raises(Exception, match=error):
        replace(SweepConfig(models=("test_resnet",), runtimes=("torch",)), **change).validate()


def test_config_validation_warns_about_more_threads_than_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    config = SweepConfig(models=("test_resnet",), runtimes=("torch", "ov"), formats=("torch", "ov"), threads=2)
    assert config.validate() == []
    (warning,) = replace(config, threads=999).validate()
    assert warning.startswith("--threads 999 is more than the 2 logical cores") and "--threads 2 or fewer" in warning


def test_auto_batch_grows_until_throughput_stops_improving(cache, tmp_path) -> None:
    config = SweepConfig(
        models=("test_resnet",),
        runtimes=("onnxruntime",),
        precisions=("fp32",),
        batches="auto",
        policy=MeasurePolicy.quick(),
        isolate=False,
    )
    sweep = Sweep(config, cache, Results(), work_dir=tmp_path)
    sweep.run()
    rows = sweep.results.rows
    assert [r.batch for r in rows] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512][: len(rows)]
    assert len(rows) >= 2
    if len(rows) < 10:  # it stopped early: the last step gained under 5 %
        best_before = max(r.throughput for r in rows[:-1])
        assert rows[-1].throughput < best_before * 1.05


def test_resume_retries_failed_cells_only_when_asked(cache, tmp_path) -> None:
    config = SweepConfig(
        models=("test_resnet",),
        runtimes=("onnxruntime",),
        precisions=("fp32",),
        batches=(1, 2),
        policy=MeasurePolicy.quick(),
        isolate=False,
    )
    first = Sweep(config, cache, Results(), work_dir=tmp_path)
    first.run()
    crashed = first.results.rows[0]
    crashed.status, crashed.message, crashed.samples_ms = "crashed", "worker died with SIGSEGV", []
    kept = list(first.results.rows[1].samples_ms)

    plain = Sweep(config, cache, Results.from_json(first.results.to_json()), work_dir=tmp_path)
    plain.run()
    assert [r.status for r in plain.results.rows] == ["crashed", "ok"]  # resume alone fills gaps only

    retry = Sweep(
        replace(config, retry_failed=True), cache, Results.from_json(first.results.to_json()), work_dir=tmp_path
    )
    retry.run()
    statuses = {r.batch: r.status for r in retry.results.rows}
    assert statuses == {1: "ok", 2: "ok"}
    assert next(r for r in retry.results.rows if r.batch == 2).samples_ms == kept  # the ok cell was not re-run


def test_static_formats_get_one_artifact_per_batch_unless_dynamic_is_asked() -> None:
    from deploybench.artifact import BatchRange
    from deploybench.sweep import export_batch

    assert export_batch(True, 8, (1, 8), dynamic=False) == BatchRange(8, 8, 8)  # trtexec --shapes, opt = batch
    assert export_batch(True, 8, (1, 8), dynamic=True) == BatchRange(1, 1, 64)  # the shared dynamic artifact
    assert export_batch(False, 8, (1, 8), dynamic=False) == BatchRange(1, 1, 64)  # fixed at load where it can be
    assert export_batch(False, 128, (1, 128), dynamic=False) == BatchRange(1, 1, 128)


@pytest.mark.parametrize("dynamic", [False, True])
def test_sweep_builds_and_labels_per_batch_artifacts(cache, tmp_path, monkeypatch, dynamic: bool) -> None:
    from dataclasses import dataclass

    from deploybench import registry
    from deploybench.artifact import BatchRange
    from deploybench.exporters.torchscript import TorchScriptOptions

    @dataclass(frozen=True)
    class PerBatch(TorchScriptOptions):  # the batch in the cache key, as TensorRT's options have it
        batch: BatchRange = BatchRange(1, 1, 64)

    exporter = registry.exporters.get("torchscript")
    monkeypatch.setattr(exporter, "static_per_batch", True)  # as TensorRT declares it
    monkeypatch.setattr(exporter, "Options", PerBatch)
    config = SweepConfig(
        models=("test_resnet",),
        runtimes=("torchscript",),
        batches=(1, 2),
        dynamic_batch=dynamic,
        policy=MeasurePolicy.quick(),
        isolate=False,
        parity_images=2,
    )
    rows = Sweep(config, cache, Results(), work_dir=tmp_path).run().rows
    assert [r.status for r in rows] == ["ok", "ok"], [r.message for r in rows]
    batches = [Artifact.load(Path(r.artifact.path)).batch for r in rows]
    if dynamic:
        assert batches[0] == batches[1] and batches[0].dynamic
        assert [r.batch_shape for r in rows] == ["dynamic", "dynamic"]
    else:
        assert [(b.min, b.opt, b.max) for b in batches] == [(1, 1, 1), (2, 2, 2)]
        assert [r.batch_shape for r in rows] == ["static", "static"]


def test_openvino_rows_record_the_static_shape_and_the_interval(swept) -> None:
    sweep, _ = swept
    rows = [r for r in sweep.results.rows if r.runtime == "openvino" and r.status == "ok"]
    assert rows
    for row in rows:
        assert row.batch_shape == "static"
        assert row.runtime_info["compiled_input_shape"].startswith(f"[{row.batch},")
        low, high = row.median_ci_ms
        assert low <= row.stats.median <= high and row.stop_reason
