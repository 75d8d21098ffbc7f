"""Model facts and parity references kept between runs: used only where the identity pins them,
and a warm sweep builds no model in its own process."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deploybench import model_records
from deploybench.cache import ArtifactCache
from deploybench.harness import MeasurePolicy
from deploybench.model_facts import ModelFacts
from deploybench.model_records import ModelRecords, arrays_digest
from deploybench.models import ModelSpec, resolve
from deploybench.results import Results
from deploybench.sweep import Sweep, SweepConfig


@pytest.fixture
def spec() -> ModelSpec:
    return resolve("timm:test_resnet")


def _build_counting(calls: list[Path], value: float = 1.0):
    def build(path: Path) -> Path:
        calls.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, n_outputs=1, output0=np.full((2, 3), value, np.float32))
        return path

    return build


INPUTS = {"inputs": np.arange(6, dtype=np.float32).reshape(2, 3)}
DIGEST = arrays_digest(INPUTS)


def test_a_reference_is_built_once_then_copied(tmp_path: Path, spec: ModelSpec) -> None:
    records, calls = ModelRecords(tmp_path / "records"), []
    first = records.reference(spec, DIGEST, "seed 1", tmp_path / "a" / "ref.npz", _build_counting(calls))
    second = records.reference(spec, DIGEST, "seed 1", tmp_path / "b" / "ref.npz", _build_counting(calls, 2.0))
    assert len(calls) == 1 and first == tmp_path / "a" / "ref.npz"
    assert second == tmp_path / "b" / "ref.npz"
    np.testing.assert_array_equal(np.load(second)["output0"], np.load(first)["output0"])


@pytest.mark.parametrize(
    "change",
    [
        lambda spec, arrays, origin: (spec, {"inputs": arrays["inputs"] + 1}, origin),
        lambda spec, arrays, origin: (spec, {**arrays, "dataset_inputs": arrays["inputs"]}, origin),
        lambda spec, arrays, origin: (spec, arrays, "seed 2"),
        lambda spec, arrays, origin: (replace(spec, ref=replace(spec.ref, seed=1)), arrays, origin),
        lambda spec, arrays, origin: (replace(spec, library_version="0.0.0"), arrays, origin),
    ],
    ids=["inputs", "dataset", "origin", "weights", "library"],
)
def test_anything_that_changes_the_reference_builds_it_again(tmp_path: Path, spec: ModelSpec, change) -> None:
    records, calls = ModelRecords(tmp_path / "records"), []
    records.reference(spec, DIGEST, "seed 1", tmp_path / "ref.npz", _build_counting(calls))
    other_spec, arrays, origin = change(spec, INPUTS, "seed 1")
    records.reference(other_spec, arrays_digest(arrays), origin, tmp_path / "ref2.npz", _build_counting(calls, 2.0))
    assert len(calls) == 2
    assert np.load(tmp_path / "ref2.npz")["output0"][0, 0] == 2.0


def test_a_computing_library_upgrade_builds_it_again(tmp_path: Path, spec: ModelSpec, monkeypatch) -> None:
    records, calls = ModelRecords(tmp_path / "records"), []
    records.reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting(calls))
    real = model_records._version
    monkeypatch.setattr(model_records, "_version", lambda name: "99.0" if name == "torch" else real(name))
    records.reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting(calls))
    assert len(calls) == 2


def test_a_damaged_record_is_built_again(tmp_path: Path, spec: ModelSpec) -> None:
    records, calls = ModelRecords(tmp_path / "records"), []
    records.reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting(calls))
    (kept,) = (tmp_path / "records").glob("*.reference.npz")
    kept.write_bytes(kept.read_bytes()[:40])  # cut short
    records.reference(spec, DIGEST, "", tmp_path / "ref2.npz", _build_counting(calls, 2.0))
    assert len(calls) == 2
    assert np.load(tmp_path / "ref2.npz")["output0"][0, 0] == 2.0
    assert np.load(kept)["output0"][0, 0] == 2.0  # and the record is whole again


@pytest.mark.parametrize("why", ["unpinned", "checkpoint"])
def test_models_the_identity_does_not_pin_are_computed_every_time(tmp_path: Path, spec: ModelSpec, why) -> None:
    if why == "unpinned":  # the user's own code, a .pt file: they change without a version
        spec = replace(spec, pinned=False)
    else:  # its load report needs the module built
        spec = replace(spec, ref=replace(spec.ref, checkpoint=str(tmp_path / "weights.safetensors")))
    records, calls = ModelRecords(tmp_path / "records"), []
    for _ in range(2):
        records.reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting(calls))
    assert len(calls) == 2
    assert not (tmp_path / "records").exists()


def test_user_factories_are_not_pinned_and_library_models_are(sample_factory_module: str) -> None:
    assert not resolve(f"{sample_factory_module}:small_net").pinned
    assert resolve("timm:test_resnet").pinned
    pytest.importorskip("ultralytics")
    assert resolve("yolov8n").pinned


def test_facts_are_counted_once(tmp_path: Path, spec: ModelSpec, monkeypatch) -> None:
    counted = []
    real = model_records.model_facts
    monkeypatch.setattr(model_records, "model_facts", lambda s: counted.append(s) or real(s))
    records = ModelRecords(tmp_path / "records")
    first = records.facts(spec)
    again = records.facts(resolve("timm:test_resnet"))
    assert len(counted) == 1
    assert again == first and isinstance(again, ModelFacts) and again.flops and again.parameters


def test_a_warm_sweep_builds_no_model_in_its_process(tmp_path: Path, monkeypatch) -> None:
    config = SweepConfig(
        models=("test_resnet",),
        runtimes=("onnxruntime",),
        precisions=("fp32",),
        batches=(1,),
        policy=MeasurePolicy.quick(),
        isolate=False,
    )
    cache = ArtifactCache(tmp_path / "cache")
    cold = Sweep(config, cache, Results(), work_dir=tmp_path / "cold").run()
    built = []
    real_build = ModelSpec.build
    monkeypatch.setattr(ModelSpec, "build", lambda self: built.append(self.name) or real_build(self))
    warm = Sweep(config, cache, Results(), work_dir=tmp_path / "warm").run()
    assert built == []
    assert warm.models == cold.models
    (cold_row,), (warm_row,) = cold.rows, warm.rows
    assert warm_row.parity.verdict == cold_row.parity.verdict == "pass"
    assert warm_row.parity.outputs[0].max_abs_error == cold_row.parity.outputs[0].max_abs_error


def test_a_cache_that_cannot_keep_records_still_gives_the_run_its_figures(tmp_path: Path, spec: ModelSpec) -> None:
    blocked = tmp_path / "records"
    blocked.write_text("a file where the folder would go")
    records, calls = ModelRecords(blocked), []
    path = records.reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting(calls))
    assert len(calls) == 1 and np.load(path)["output0"].shape == (2, 3)
    assert records.facts(spec).flops


def test_clearing_the_cache_removes_records_and_counts_artifacts_only(tmp_path: Path, spec: ModelSpec) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    ModelRecords(cache.records_dir).reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting([]))
    assert cache.clear() == 0
    assert not cache.records_dir.exists()


@pytest.mark.parametrize(
    "change",
    [
        lambda spec, monkeypatch: replace(spec, ref=replace(spec.ref, pretrained=True)),
        lambda spec, monkeypatch: replace(spec, data_init=True),
        lambda spec, monkeypatch: monkeypatch.setattr(model_records, "_machine", lambda: ["another CPU", []]) or spec,
        lambda spec, monkeypatch: monkeypatch.setattr(model_records, "_code_digest", lambda: "edited") or spec,
    ],
    ids=["pretrained", "data_init", "machine", "code"],
)
def test_weights_machine_and_code_are_in_the_key(tmp_path: Path, spec: ModelSpec, monkeypatch, change) -> None:
    records, calls = ModelRecords(tmp_path / "records"), []
    records.reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting(calls))
    records.reference(change(spec, monkeypatch), DIGEST, "", tmp_path / "ref.npz", _build_counting(calls))
    assert len(calls) == 2


def test_an_empty_record_is_built_again_and_records_are_ordinary_files(tmp_path: Path, spec: ModelSpec) -> None:
    records, calls = ModelRecords(tmp_path / "records"), []
    records.reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting(calls))
    (kept,) = (tmp_path / "records").glob("*.reference.npz")
    assert kept.stat().st_mode & 0o044  # readable by the other users of a shared cache
    kept.write_bytes(b"")  # a crash between create and write
    records.reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting(calls))
    assert len(calls) == 2 and kept.stat().st_size > 0
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no staging file left behind


def test_onnx_files_with_external_data_are_not_pinned(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [weight],
    )
    model = helper.make_model(graph)
    onnx.save(model, tmp_path / "inline.onnx")
    onnx.save(model, tmp_path / "external.onnx", save_as_external_data=True, size_threshold=0)
    assert resolve(str(tmp_path / "inline.onnx")).pinned
    assert not resolve(str(tmp_path / "external.onnx")).pinned


def test_yolo_names_are_pinned_unless_a_file_of_that_name_would_be_read(tmp_path: Path, monkeypatch) -> None:
    from deploybench.sources import _packaged_yolo

    monkeypatch.chdir(tmp_path)
    assert _packaged_yolo("yolov8n")
    assert not _packaged_yolo("yolov8n.yaml") and not _packaged_yolo("models/yolov8n")
    (tmp_path / "yolov8n.yaml").write_text("nc: 3\n")  # Ultralytics reads the working folder's first
    assert not _packaged_yolo("yolov8n")


@pytest.fixture
def started(monkeypatch) -> list:
    """The zygotes sweeps start in this test, none left from an earlier test to reuse."""
    from deploybench import spawn

    started: list = []
    start = spawn.start_zygote

    def recording(runtimes):
        new = start(runtimes)
        started.extend(new)
        return new

    monkeypatch.setattr(spawn, "_zygotes", {})
    monkeypatch.setattr(spawn, "start_zygote", recording)
    return started


def test_a_sweep_that_cannot_plan_ends_its_zygote(tmp_path: Path, started: list) -> None:
    from deploybench import spawn
    from deploybench.errors import UnknownNameError

    config = SweepConfig(models=("no_such_model_anywhere",), runtimes=("torch",), policy=MeasurePolicy.quick())
    with pytest.raises(UnknownNameError):
        Sweep(config, ArtifactCache(tmp_path / "cache"), Results(), work_dir=tmp_path).run()
    assert len(started) == 1 and started[0].process.poll() is not None  # ended, not left importing
    assert not spawn._zygotes


def test_cache_list_counts_the_records(tmp_path: Path, spec: ModelSpec, capsys) -> None:
    from deploybench.cli import main

    cache = ArtifactCache(tmp_path / "cache")
    ModelRecords(cache.records_dir).reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting([]))
    assert main(["cache", "list", "--cache", str(cache.root)]) == 0
    assert "model records (facts, parity references): 1 files" in capsys.readouterr().out


def test_pretrained_yolo_is_not_pinned(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "yolov8n.pt").write_bytes(b"released weights are a file the user may replace")
    assert resolve("yolov8n").pinned  # random weights read the packaged yaml only
    assert not resolve("yolov8n", pretrained=True).pinned


def test_onnx_constants_and_subgraphs_with_external_data_are_seen(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    big = numpy_helper.from_array(np.ones((4, 4), np.float32), "c")
    inner = helper.make_graph(
        [helper.make_node("Constant", [], ["k"], value=big)],
        "branch",
        [],
        [helper.make_tensor_value_info("k", TensorProto.FLOAT, [4, 4])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["y"], then_branch=inner, else_branch=inner)],
        "g",
        [helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])],
    )
    model = helper.make_model(graph)
    onnx.save(model, tmp_path / "inline.onnx")
    onnx.save(model, tmp_path / "external.onnx", save_as_external_data=True, size_threshold=0, convert_attribute=True)
    from deploybench.sources import read_onnx_graph

    assert not read_onnx_graph(tmp_path / "inline.onnx").external_data
    assert read_onnx_graph(tmp_path / "external.onnx").external_data


def test_a_sweep_of_runtimes_that_never_fork_ends_its_zygote(tmp_path: Path, started: list) -> None:
    from deploybench import spawn

    config = SweepConfig(
        models=("test_resnet",),
        runtimes=("torch", "onnxruntime"),
        formats=("onnx",),  # the torch cells are filtered out
        batches=(1,),
        policy=MeasurePolicy.quick(),
    )
    rows = Sweep(config, ArtifactCache(tmp_path / "cache"), Results(), work_dir=tmp_path).run().rows
    assert [r.runtime for r in rows] == ["onnxruntime"]
    assert len(started) == 1 and started[0].process.poll() is not None and not spawn._zygotes


def test_a_built_reference_is_an_ordinary_file(tmp_path: Path, spec: ModelSpec) -> None:
    path = ModelRecords(tmp_path / "records").reference(spec, DIGEST, "", tmp_path / "ref.npz", _build_counting([]))
    assert path.stat().st_mode & 0o044
