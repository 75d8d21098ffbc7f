"""Data-dependent initialisation of randomly initialised models.

Random weights with default BatchNorm statistics (mean 0, variance 1) let the shared,
input-independent part of every activation grow layer by layer: the outputs hardly
depend on the image, and parity cannot tell a faithful artifact from one that ignores its
input. Re-estimating the BatchNorm statistics on real images (never the parity images)
normalises each channel by its spread over data, as training would, so outputs follow
the input. The reference and every artifact are built from the same re-estimated weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INIT_IMAGES = 16
VERSION = 1  # part of the model identity: a change here rebuilds cached artifacts


def batchnorm_layers(module: Any) -> list[Any]:
    import torch

    return [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def reestimate_batchnorm(module: Any, images: np.ndarray) -> int:
    """Replace every BatchNorm layer's running statistics by those of ``images``; returns how many.

    One forward pass with only the BatchNorm layers in training mode (dropout and heads stay
    in eval mode) and a cumulative average; the module is left in eval mode.
    """
    import torch

    layers = batchnorm_layers(module)
    if not layers:
        return 0
    module.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    try:
        with torch.no_grad():
            module(torch.from_numpy(np.ascontiguousarray(images)))
    finally:
        module.eval()
    return len(layers)
