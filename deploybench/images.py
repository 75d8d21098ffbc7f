"""Real images as model inputs: calibration sets, parity inputs and ImageFolder datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.errors import UsageError, reading
from deploybench.inputs import normalize
from deploybench.models import InputSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm")
UNREADABLE_IMAGE = "remove it or replace it with a readable image"


def image_files(folder: Path) -> list[Path]:
    """Every image below ``folder``, sorted so runs are reproducible."""
    if not folder.is_dir():
        raise UsageError(f"image folder {str(folder)!r} does not exist; pass a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {folder}")
    return files


def _resized(image: Any, input_spec: InputSpec) -> np.ndarray:
    """A PIL image resized to the input's height and width, CHW, scaled into its value range."""
    from PIL import Image

    channels, height, width = input_spec.shape
    image = image.convert("RGB" if channels == 3 else "L").resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32).reshape(height, width, -1).transpose(2, 0, 1) / 255.0
    lo, hi = input_spec.value_range
    return array * (hi - lo) + lo


def load_image(path: Path, input_spec: InputSpec) -> np.ndarray:
    """One image file resized to the input's height and width, CHW, scaled into its value range."""
    from PIL import Image

    # PIL decodes lazily: a corrupt header fails in open, truncated data in convert.
    with reading("image", path, UNREADABLE_IMAGE), Image.open(path) as img:
        return _resized(img, input_spec)


def pil_batch(images: list[Any], input_spec: InputSpec, preprocess: Callable[[Any], Any] | None = None) -> np.ndarray:
    """PIL images as the NCHW batch the model expects: through the library's own preprocessing
    when there is one, else resized to the input and normalised by its mean and std."""
    if preprocess is None:
        return normalize(np.stack([_resized(img, input_spec) for img in images]), input_spec)
    return np.stack([np.asarray(preprocess(img.convert("RGB")), dtype=input_spec.dtype) for img in images])


def load_images(paths: list[Path], input_spec: InputSpec, preprocess: Callable[[Any], Any] | None = None) -> np.ndarray:
    """Image files as the NCHW batch the model expects (see ``pil_batch``)."""
    if preprocess is None:
        return normalize(np.stack([load_image(p, input_spec) for p in paths]), input_spec)
    from PIL import Image

    def one(path: Path) -> np.ndarray:
        with reading("image", path, UNREADABLE_IMAGE), Image.open(path) as img:
            return np.asarray(preprocess(img.convert("RGB")), dtype=input_spec.dtype)

    return np.stack([one(p) for p in paths])


def image_folder(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """An ImageFolder layout (one sub-folder per class): files, labels, class names."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise UsageError(f"{root} is not an ImageFolder dataset; it needs one sub-folder of images per class")
    files, labels = [], []
    for index, name in enumerate(classes):
        for path in image_files(root / name):
            files.append(path)
            labels.append(index)
    return files, labels, classes
