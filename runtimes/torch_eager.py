"""PyTorch eager: the reference runtime (FP32 with TF32 off), plus FP16/BF16 and channels-last."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploybench.artifact import Artifact
from deploybench.batch import Batch
from deploybench.plugin_options import PluginOptions
from deploybench.runtimes.torch_base import TorchRuntimeBase
from deploybench.torch_utils import module_for, strict_fp32


@dataclass(frozen=True)
class TorchOptions(PluginOptions):
    channels_last: bool = False  # NHWC module and inputs (faster convolutions on some CPUs and GPUs)


class TorchEagerRuntime(TorchRuntimeBase):
    name = "torch"
    aliases = ("eager", "pytorch")
    formats = ("pytorch",)
    Options = TorchOptions

    def _compute_precision(self, artifact: Artifact) -> str:
        return self.options.precision  # the module is cast here, not at export

    def _open(self, artifact: Artifact) -> Any:
        import torch

        assert artifact.model is not None, "a pytorch artifact carries its ModelSpec"
        if self.options.precision == "fp32":
            strict_fp32()
        module = module_for(artifact.model.build(), self.options.device, self.options.precision)
        if self.options.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.info["channels_last"] = self.options.channels_last
        return self._wrap(module)

    def _wrap(self, module: Any) -> Any:
        """Hook for torch.compile."""
        return module

    def prepare(self, batch: Batch) -> Any:
        import torch

        tensor = super().prepare(batch)
        return tensor.contiguous(memory_format=torch.channels_last) if self.options.channels_last else tensor
