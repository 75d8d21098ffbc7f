"""Real images as inputs: the model library's own preprocessing, and the plain fallback."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deploybench.errors import UsageError
from deploybench.images import image_files, image_folder, load_images
from deploybench.models import InputSpec, resolve


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "img" / "a.png"
    path.parent.mkdir()
    Image.fromarray(rng.integers(0, 255, size=(200, 300, 3), dtype=np.uint8)).save(path)
    return path


def test_timm_models_use_timms_own_eval_transform(photo) -> None:
    from timm.data import create_transform, resolve_data_config

    spec = resolve("test_resnet")
    batch = load_images([photo], spec.input, spec.preprocess)
    transform = create_transform(**resolve_data_config({}, model=spec.build()))
    with Image.open(photo) as img:
        expected = transform(img.convert("RGB")).numpy()
    assert batch.shape == (1, 3, 160, 160) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0], expected, atol=1e-6)  # resize 168 + centre crop, not a plain resize


def test_fallback_resizes_and_normalises(photo) -> None:
    spec = InputSpec(shape=(3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    batch = load_images([photo], spec)
    assert batch.shape == (1, 3, 32, 32)
    assert batch.min() >= -2.0 - 1e-6 and batch.max() <= 2.0 + 1e-6  # (x - 0.5) / 0.25 with x in [0, 1]


def test_folders_without_images_are_clear_errors(tmp_path) -> None:
    with pytest.raises(UsageError, match="no images"):
        image_files(tmp_path)
    with pytest.raises(UsageError, match="ImageFolder"):
        image_folder(tmp_path)
