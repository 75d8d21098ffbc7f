"""Photographs that installed libraries ship, cut into seeded views for parity, calibration
and the data-dependent initialisation of random weights. Nothing is downloaded.

Each use draws its views with its own seed, so the INT8 calibration set and the images
that re-estimate BatchNorm statistics are never the parity images.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

# (package, file inside it): real photographs with people, vehicles, buildings, flowers.
BUNDLED_PHOTOS: tuple[tuple[str, str], ...] = (
    ("ultralytics", "assets/bus.jpg"),
    ("ultralytics", "assets/zidane.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
)
PARITY_SEED = 1234
CALIBRATION_SEED = 7
INIT_SEED = 99


def bundled_photos() -> list[Path]:
    """The bundled photographs of the packages installed here (found without importing them)."""
    found = []
    for package, relative in BUNDLED_PHOTOS:
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            path = Path(root) / relative
            if path.is_file():
                found.append(path)
                break
    return found


def photo_views(photos: list[Path], count: int, seed: int) -> list[Any]:
    """``count`` seeded crops (half to all of each side, random place, maybe mirrored) as PIL images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    views = []
    for index in range(count):
        with Image.open(photos[index % len(photos)]) as image:
            image = image.convert("RGB")
            width, height = image.size
            scale = rng.uniform(0.5, 1.0)
            crop_w, crop_h = max(1, int(width * scale)), max(1, int(height * scale))
            x, y = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
            view = image.crop((x, y, x + crop_w, y + crop_h))
        views.append(view.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else view)
    return views


def describe(photos: list[Path], count: int, seed: int) -> str:
    names = ", ".join(sorted({p.name for p in photos}))
    return f"{count} crops (seed {seed}) of photos bundled with installed packages ({names})"


def sample_batch(input_spec: Any, preprocess: Any, count: int, seed: int) -> tuple[np.ndarray, str]:
    """``count`` inputs as the model expects them: views of the bundled photos through the
    model's own preprocessing, or seeded noise where no photo is installed; with their origin."""
    from deploybench.images import pil_batch
    from deploybench.inputs import example_batch

    photos = bundled_photos()
    if not photos:
        return example_batch(
            input_spec, count, seed=seed
        ), f"{count} seeded noise images (seed {seed}; no bundled photos)"
    return pil_batch(photo_views(photos, count, seed), input_spec, preprocess), describe(photos, count, seed)
