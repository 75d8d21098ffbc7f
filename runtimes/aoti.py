"""AOTInductor: load a ``.pt2`` package compiled by torch.export + AOTInductor."""

from __future__ import annotations

from typing import Any

from deploybench.artifact import Artifact
from deploybench.errors import RuntimeLoadError
from deploybench.runtimes.torch_base import TorchRuntimeBase


class AotiRuntime(TorchRuntimeBase):
    name = "aoti"
    aliases = ("aotinductor", "pt2")
    formats = ("aoti",)
    call = "compiled package call"
    # TF32 is decided when the package is compiled (exported with TF32 off), not at load.
    precisions = ("fp32", "fp16", "bf16")
    cuda_only_precisions = ()  # no tf32: it is decided at compile time

    def _open(self, artifact: Artifact) -> Any:
        import torch._inductor

        if artifact.device != self.options.device:  # the package holds kernels for one device
            raise RuntimeLoadError(
                f"{artifact.file.name} was compiled for {artifact.device}, not "
                f"{self.options.device}; export it with --device {self.options.device}"
            )
        return torch._inductor.aoti_load_package(str(artifact.file))
