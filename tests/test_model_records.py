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
from deploybench.model_records import ModelRecords
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


def test_a_reference_is_built_once_then_copied(tmp_path: Path, spec: ModelSpec) -> None:
    records, calls = ModelRecords(tmp_path / "records"), []
    first = records.reference(spec, INPUTS, "seed 1", tmp_path / "a" / "ref.npz", _build_counting(calls))
    second = records.reference(spec, INPUTS, "seed 1", tmp_path / "b" / "ref.npz", _build_counting(calls, 2.0))
    assert calls == [first]
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
    records.reference(spec, INPUTS, "seed 1", tmp_path / "ref.npz", _build_counting(calls))
    other_spec, arrays, origin = change(spec, INPUTS, "seed 1")
    records.reference(other_spec, arrays, origin, tmp_path / "ref2.npz", _build_counting(calls, 2.0))
    assert len(calls) == 2
    assert np.load(tmp_path / "ref2.npz")["output0"][0, 0] == 2.0


def test_a_computing_library_upgrade_builds_it_again(tmp_path: Path, spec: ModelSpec, monkeypatch) -> None:
    records, calls = ModelRecords(tmp_path / "records"), []
    records.reference(spec, INPUTS, "", tmp_path / "ref.npz", _build_counting(calls))
    real = model_records._version
    monkeypatch.setattr(model_records, "_version", lambda name: "99.0" if name == "torch" else real(name))
    records.reference(spec, INPUTS, "", tmp_path / "ref.npz", _build_counting(calls))
    assert len(calls) == 2


def test_a_damaged_record_is_built_again(tmp_path: Path, spec: ModelSpec) -> None:
    records, calls = ModelRecords(tmp_path / "records"), []
    records.reference(spec, INPUTS, "", tmp_path / "ref.npz", _build_counting(calls))
    (kept,) = (tmp_path / "records").glob("*.reference.npz")
    kept.write_bytes(kept.read_bytes()[:40])  # cut short
    records.reference(spec, INPUTS, "", tmp_path / "ref2.npz", _build_counting(calls, 2.0))
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
        records.reference(spec, INPUTS, "", tmp_path / "ref.npz", _build_counting(calls))
    assert len(calls) == 2
    assert not (tmp_path / "records").exists()


def test_user_factories_are_not_pinned_and_library_models_are(sample_factory_module: str) -> None:
    assert not resolve(f"{sample_factory_module}:small_net").pinned
    assert resolve("timm:test_resnet").pinned and resolve("yolov8n").pinned


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
    path = records.reference(spec, INPUTS, "", tmp_path / "ref.npz", _build_counting(calls))
    assert calls == [path] and np.load(path)["output0"].shape == (2, 3)
    assert records.facts(spec).flops


def test_clearing_the_cache_removes_records_and_counts_artifacts_only(tmp_path: Path, spec: ModelSpec) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    ModelRecords(cache.records_dir).reference(spec, INPUTS, "", tmp_path / "ref.npz", _build_counting([]))
    assert cache.clear() == 0
    assert not cache.records_dir.exists()
