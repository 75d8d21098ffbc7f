"""PyTorch: the module itself, as eager PyTorch and torch.compile run it. Nothing is written.

Registered like every other format, so planning asks it the same questions (devices,
precisions, whether the model has a module at all) instead of special-casing "pytorch".
``in_memory`` tells the sweep that the worker builds the module: there is no file to cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploybench.errors import UsageError
from deploybench.exporters.base import Exporter, ExportOptions
from deploybench.models import ModelSpec


class PyTorchExporter(Exporter):
    name = "pytorch"
    aliases = ("torch", "eager")
    suffix = ""
    requires = ("torch",)
    devices = ("cpu", "cuda")
    precisions = ("fp32", "tf32", "fp16", "bf16")  # the module is cast when a runtime loads it
    check_runtime = "torch"
    in_memory = True

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        raise UsageError("pytorch is the module itself: nothing is exported; run it with --runtime torch")
