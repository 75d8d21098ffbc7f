"""Spec resolution for every source, aliases, weights, and bad specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deploybench.errors import ModelSpecError, UnknownNameError
from deploybench.files import module_hash
from deploybench.inputs import count_flops, example_batch
from deploybench.models import ALIASES, resolve


def test_timm_bare_and_prefixed_names_resolve_to_the_same_model() -> None:
    bare, prefixed = resolve("test_vit"), resolve("timm:test_vit")
    assert bare.source == prefixed.source == "timm"
    assert bare.input.shape == (3, 160, 160)
    assert bare.task == "classification"
    assert bare.identity() == prefixed.identity()


def test_alias_resolves_and_says_so() -> None:
    spec = resolve("vit_b16")
    assert spec.name == "vit_base_patch16_224"
    assert any("alias" in note for note in spec.notes)


def test_random_initialisation_is_seeded_and_announced(tiny) -> None:
    again = resolve("test_resnet")
    assert module_hash(again.build()) == module_hash(tiny.build())
    assert any("random initialisation" in note for note in tiny.notes)


def test_resnet50_parameter_count_is_exact() -> None:
    spec = resolve("resnet50")
    spec.build()
    assert spec.parameters == 25_557_032


def test_yolov8n_is_a_640_detector_with_library_parameter_count() -> None:
    spec = resolve("yolov8n")
    module = spec.build()
    assert spec.source == "ultralytics" and spec.task == "detection"
    assert spec.input.shape == (3, 640, 640)
    assert 3_150_000 < spec.parameters < 3_170_000  # 3,157,200 before Conv+BN fusion
    with torch.inference_mode():
        out = module(torch.zeros(1, 3, 640, 640))
    assert tuple(out.shape) == (1, 84, 8400)  # export-mode head: one tensor


def test_flops_are_counted(tiny) -> None:
    flops = count_flops(tiny.build(), tiny.input)
    # A second count on a doubled input must scale by ~4 (conv FLOPs follow H*W), proving it is counted.
    from dataclasses import replace

    bigger = count_flops(tiny.build(), replace(tiny.input, shape=(3, 320, 320)))
    assert flops > 0 and 3.5 < bigger / flops < 4.5


def test_python_factory_source(sample_factory_module: str) -> None:
    spec = resolve(f"{sample_factory_module}:small_net")
    assert spec.source == "python"
    out = spec.build()(torch.zeros(2, 3, 224, 224))
    assert tuple(out.shape) == (2, 5)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("my_models:", "malformed"),
        ("my models:net", "malformed"),
        ("no_such_module_xyz:factory", "cannot import"),
    ],
)
def test_malformed_python_specs(sample_factory_module: str, text: str, fragment: str) -> None:
    with pytest.raises(ModelSpecError, match=fragment):
        resolve(text)


def test_not_callable_factory(sample_factory_module: str) -> None:
    with pytest.raises(ModelSpecError, match="no callable"):
        resolve(f"{sample_factory_module}:not_callable")


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        resolve("resnet5O")
    assert "did you mean" in str(info.value) and "resnet50" in str(info.value)


def test_onnx_file_source(artifacts) -> None:
    artifact = artifacts.get("onnx")
    spec = resolve(str(artifact.file))
    assert spec.source == "onnx" and not spec.has_module
    assert spec.input.shape == (3, 160, 160)
    assert spec.task == "classification"


def test_missing_onnx_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="does not exist"):
        resolve(str(tmp_path / "absent.onnx"))


def test_checkpoint_state_dict_and_safetensors_load(tmp_path: Path, tiny) -> None:
    from safetensors.torch import save_file

    state = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in tiny.build().state_dict().items()}
    torch.save(state, tmp_path / "w.pt")
    save_file(state, str(tmp_path / "w.safetensors"))
    for file in ("w.pt", "w.safetensors"):
        module = resolve("test_resnet", checkpoint=str(tmp_path / file)).build()
        assert float(next(module.parameters()).detach().flatten()[0]) == 0.5


def test_pretrained_and_checkpoint_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="either"):
        resolve("test_resnet", pretrained=True, checkpoint=str(tmp_path / "x.pt"))


def test_example_batch_is_seeded_and_normalised(tiny) -> None:
    a, b = example_batch(tiny.input, 2, seed=1), example_batch(tiny.input, 2, seed=1)
    assert a.shape == (2, 3, 160, 160) and a.dtype.name == "float32"
    assert (a == b).all()
    assert a.min() < 0  # mean/std normalisation moved [0, 1] pixels below zero


def test_every_alias_names_a_known_source() -> None:
    assert {target.split(":", 1)[0] for target in ALIASES.values()} <= {"timm", "ultralytics"}


# Ultralytics tasks: read from the model, not assumed ------------------------------------------


def _eager_row(model: str, tmp_path: Path):
    """One quick eager-PyTorch cell in this process: parity against the FP32 reference on 2 images."""
    from deploybench.cache import ArtifactCache
    from deploybench.harness import MeasurePolicy
    from deploybench.results import Results
    from deploybench.sweep import Sweep, SweepConfig

    config = SweepConfig(
        models=(model,), runtimes=("torch",), batches=(1,), policy=MeasurePolicy.quick(), isolate=False, parity_images=2
    )
    results = Sweep(config, ArtifactCache(tmp_path / "cache"), Results(), work_dir=tmp_path / "refs").run()
    [row] = results.rows
    assert row.status == "ok", row.message
    return row


def test_yolo_classifier_is_a_224_classifier_with_top1_parity(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    spec = resolve("yolov8n-cls")
    assert (spec.task, spec.input.shape) == ("classification", (3, 224, 224))
    row = _eager_row("yolov8n-cls", tmp_path)
    # One output, the class probabilities Ultralytics exports, and the top-1 check ran on it.
    assert [o.shape for o in row.parity.outputs] == [[2, 1000]]
    assert "top1_agreement" in row.parity.task


def test_yolo_segmenter_gets_per_output_parity(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    spec = resolve("yolov8n-seg")
    assert (spec.task, spec.input.shape) == ("segmentation", (3, 640, 640))
    row = _eager_row("yolov8n-seg", tmp_path)
    # Export-mode head: boxes+classes+mask coefficients, and the mask prototypes, each compared.
    assert [o.shape for o in row.parity.outputs] == [[2, 116, 8400], [2, 32, 160, 160]]
    assert row.parity.verdict == "pass" and row.parity.task == {}


def test_yolo_task_table_covers_detect_classify_segment_pose_obb() -> None:
    pytest.importorskip("ultralytics")
    from deploybench.sources import YOLO_TASKS

    for stem, task in [("yolov8n", "detection"), ("yolov8n-pose", "pose"), ("yolo11n-obb", "obb")]:
        assert resolve(stem).task == task  # read from the yaml's head, without building
    assert {t.imgsz for t in YOLO_TASKS.values()} >= {224, 640}
