"""A model's inputs and what they cost: seeded example batches, normalisation, FLOPs.

Seeded inputs make runs reproducible offline; ``count_flops`` counts one image's forward
pass (2 FLOPs per multiply-accumulate), which the reports turn into GMACs and GFLOP/s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploybench.batch import Batch, pack

if TYPE_CHECKING:
    from deploybench.models import InputSpec, ModelSpec


def count_parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(module: Any, input_spec: InputSpec) -> int:
    """FLOPs of one image's forward pass, counted by torch's FlopCounterMode (2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    example = torch.zeros(input_spec.with_batch(1), dtype=getattr(torch, input_spec.dtype))
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        module(example)
    return int(counter.get_total_flops())


def seeded_inputs(model: ModelSpec, batch: int, seed: int = 0) -> Batch:
    """Seeded inputs for every input of ``model`` (the first exactly ``example_batch``'s)."""
    return pack([example_batch(spec, batch, seed=seed + index) for index, spec in enumerate(model.inputs)])


def example_batch(input_spec: InputSpec, batch: int, seed: int = 0) -> Any:
    """Seeded random inputs inside the input's value range, normalised like the model expects."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lo, hi = input_spec.value_range
    return normalize(rng.uniform(lo, hi, size=input_spec.with_batch(batch)), input_spec)


def normalize(pixels: Any, input_spec: InputSpec) -> Any:
    """Scale NCHW pixels (already in the input's value range) by the model's mean and std."""
    import numpy as np

    data = np.asarray(pixels, dtype=np.float32)
    if input_spec.mean is not None and input_spec.std is not None:
        mean = np.asarray(input_spec.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(input_spec.std, dtype=np.float32).reshape(1, -1, 1, 1)
        data = (data - mean) / std
    return data.astype(input_spec.dtype)
