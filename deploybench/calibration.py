"""INT8 calibration inputs shared by the exporters that quantize (OpenVINO/NNCF, TensorRT)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deploybench.models import ModelSpec, example_batch

if TYPE_CHECKING:
    from deploybench.exporters.base import ExportOptions

SYNTHETIC = "synthetic (uniform noise; pass --calib-data DIR for real images)"


def calibration_samples(model: ModelSpec, options: "ExportOptions") -> tuple[np.ndarray, str]:
    """Calibration images from ``--calib-data``, or seeded synthetic inputs flagged as such."""
    if options.calib_data:
        from deploybench.images import image_files, load_images

        files = image_files(Path(options.calib_data))[: options.calib_size]
        return load_images(files, model.input, model.preprocess), f"images:{options.calib_data}"
    # Without --calib-data: views of the bundled photos drawn with the calibration seed, never
    # the parity views (sample_images seeds them apart); seeded noise where no photo is installed.
    from deploybench.sample_images import CALIBRATION_SEED, bundled_photos, sample_batch

    if not bundled_photos():
        return example_batch(model.input, options.calib_size, seed=CALIBRATION_SEED), SYNTHETIC
    samples, origin = sample_batch(model.input, model.preprocess, options.calib_size, CALIBRATION_SEED)
    return samples, f"{origin}; pass --calib-data DIR for your own images"
