"""NVIDIA's process-wide TF32 switch, which no per-library flag overrides.

``NVIDIA_TF32_OVERRIDE=0`` turns TF32 off in cuBLAS, cuDNN and TensorRT for the whole process,
whatever torch's flags or a builder flag say. ONNX Runtime's TensorRT provider has no other
off switch, so deploybench sets it there (``runtimes.onnxruntime.pin_tensorrt_tf32``); a tf32
row in a process where it is set would run IEEE fp32 under a tf32 label, so it is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from deploybench.errors import UnsupportedError

TF32_OVERRIDE = "NVIDIA_TF32_OVERRIDE"


def refuse_tf32_where_overridden(what: str, environ: Mapping[str, str] = os.environ) -> None:
    """Raise where ``NVIDIA_TF32_OVERRIDE=0`` would make ``what``, asked for TF32, run without it."""
    if environ.get(TF32_OVERRIDE) == "0":
        raise UnsupportedError(
            f"{what} asks for TF32, and {TF32_OVERRIDE}=0 in this process turns it off (set by you, or "
            "by an ONNX Runtime TensorRT fp32/fp16 row run in the same process): unset it, or drop "
            "--no-isolate so each row gets a worker of its own"
        )
