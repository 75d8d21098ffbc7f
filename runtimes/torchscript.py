"""TorchScript: ``torch.jit.load`` of the exported, frozen module."""

from __future__ import annotations

import warnings
from typing import Any

from deploybench.artifact import Artifact
from deploybench.runtimes.torch_base import TorchRuntimeBase


class TorchScriptRuntime(TorchRuntimeBase):
    name = "torchscript"
    aliases = ("ts", "jit")
    formats = ("torchscript",)
    call = "scripted forward"

    def _open(self, artifact: Artifact) -> Any:
        import torch

        with warnings.catch_warnings():  # TorchScript's deprecation notice, on every call
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(artifact.file), map_location=self.options.device)
            # Done here, not at export: its MKLDNN constants cannot be serialized.
            self.info["optimize_for_inference"] = True
            return torch.jit.optimize_for_inference(module)
