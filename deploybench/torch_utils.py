"""Small torch helpers shared by the torch-based exporters and runtimes (torch imported lazily)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

PRECISION_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def torch_dtype(precision: str) -> Any:
    import torch

    return getattr(torch, PRECISION_DTYPES.get(precision, "float32"))


def module_for(module: Any, device: str, precision: str) -> Any:
    """``module`` on ``device`` in ``precision``; a copy when that changes it, so the spec's stays FP32 on CPU."""
    if device == "cpu" and precision in ("fp32", "int8"):
        return module
    return copy.deepcopy(module).to(device=device, dtype=torch_dtype(precision))


def flatten_outputs(output: Any) -> list[Any]:
    """Tensors of a forward result in a stable order (tuples, lists and dicts flattened)."""
    if isinstance(output, dict):
        return [t for key in sorted(output) for t in flatten_outputs(output[key])]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in flatten_outputs(item)]
    return [output] if hasattr(output, "detach") else []


def to_numpy(outputs: Any) -> list[np.ndarray]:
    return [t.detach().float().cpu().numpy() for t in flatten_outputs(outputs)]


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def set_tf32(allowed: bool) -> None:
    """TensorFloat-32 in CUDA matmuls and cuDNN convolutions: off is IEEE fp32, on is ``tf32``."""
    import torch

    from deploybench.tf32 import refuse_tf32_where_overridden

    if allowed:
        refuse_tf32_where_overridden("torch")
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed
    torch.set_float32_matmul_precision("high" if allowed else "highest")


def tf32_enabled() -> bool:
    """Whether either CUDA path would use TF32 now (what a runtime records)."""
    import torch

    return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def strict_fp32() -> None:
    """The FP32 reference: no TF32 in matmuls or convolutions."""
    set_tf32(False)
