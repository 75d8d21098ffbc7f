"""Parity inputs, the data-dependent initialisation of random weights, and calibration kept apart."""

from __future__ import annotations

import numpy as np
import pytest

from deploybench.calibration import calibration_samples
from deploybench.exporters.base import ExportOptions
from deploybench.models import ModelRef, resolve
from deploybench.sample_images import PARITY_SEED, bundled_photos, sample_batch
from deploybench.sweep import SweepConfig, parity_inputs

torch = pytest.importorskip("torch")
TINY = "test_resnet"


def _spread_ratio(outputs: np.ndarray) -> float:
    """How much of the output depends on the image: spread across images over the RMS."""
    flat = outputs.reshape(len(outputs), -1).astype(np.float64)
    return float(np.sqrt(np.mean((flat - flat.mean(axis=0)) ** 2)) / np.sqrt(np.mean(flat**2)))


def test_parity_inputs_are_bundled_photos_through_the_models_preprocessing() -> None:
    if not bundled_photos():
        pytest.skip("no package with bundled photos is installed")
    spec = resolve(TINY)
    inputs, origin = parity_inputs(spec, SweepConfig(models=(TINY,)))
    assert inputs.shape == (8, *spec.input.shape)
    assert "crops" in origin and "photos" in origin
    assert len({inputs[i].tobytes() for i in range(8)}) == 8  # eight different images


def test_calibration_never_sees_the_parity_images() -> None:
    spec = resolve(TINY)
    parity, _ = parity_inputs(spec, SweepConfig(models=(TINY,)))
    calibration, origin = calibration_samples(spec, ExportOptions(calib_size=16))
    assert "seed" in origin
    parity_set = {image.tobytes() for image in parity}
    assert not any(image.tobytes() in parity_set for image in calibration)


def test_data_init_makes_random_weights_follow_the_input_and_changes_the_identity() -> None:
    with_init, without = resolve(ModelRef(TINY, data_init=True)), resolve(ModelRef(TINY))
    inputs, _ = sample_batch(with_init.input, with_init.preprocess, 8, PARITY_SEED)
    with torch.no_grad():
        ratio_with = _spread_ratio(with_init.build()(torch.from_numpy(inputs)).numpy())
        ratio_without = _spread_ratio(without.build()(torch.from_numpy(inputs)).numpy())
    assert ratio_with > 2 * ratio_without, (ratio_with, ratio_without)
    assert with_init.identity_hash() != without.identity_hash()  # cached artifacts are rebuilt
    assert any("BatchNorm statistics re-estimated" in note for note in with_init.notes)
    assert not any("BatchNorm" in note for note in without.notes)


def test_checkpoint_weights_are_never_reinitialised(tmp_path) -> None:
    model = resolve(ModelRef(TINY)).build()
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    loaded = resolve(ModelRef(TINY, checkpoint=str(path), data_init=True))
    assert not loaded.data_init
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.build().state_dict()[key], value), key
