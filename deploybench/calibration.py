"""INT8 calibration inputs shared by the exporters that quantize (OpenVINO/NNCF, TensorRT)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deploybench.models import ModelSpec

if TYPE_CHECKING:
    from deploybench.exporters.base import ExportOptions


def calibration_samples(model: ModelSpec, options: ExportOptions) -> tuple[np.ndarray, str]:
    """Calibration images from ``--calib-data``, else views of the bundled photos (seeded noise
    where none is installed), with where they came from."""
    if options.calib_data:
        from deploybench.images import image_files, load_images

        files = image_files(Path(options.calib_data))[: options.calib_size]
        return load_images(files, model.input, model.preprocess), f"images:{options.calib_data}"
    # Without --calib-data: views of the bundled photos drawn with the calibration seed, never
    # the parity views (sample_images seeds them apart); seeded noise where no photo is installed.
    from deploybench.sample_images import CALIBRATION_SEED, sample_batch

    samples, origin = sample_batch(model.input, model.preprocess, options.calib_size, CALIBRATION_SEED)
    return samples, f"{origin}; pass --calib-data DIR for your own images"
