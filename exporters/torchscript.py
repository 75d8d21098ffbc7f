"""TorchScript: trace (default) or script, then freeze.

``optimize_for_inference`` is applied by the runtime after loading: its MKLDNN-converted
constants do not survive ``torch.jit.save``/``load``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploybench.exporters.base import Exporter, ExportOptions, example_inputs
from deploybench.models import ModelSpec
from deploybench.plugin_options import PluginOptions
from deploybench.torch_utils import module_for, torch_dtype


@dataclass(frozen=True)
class TorchScriptOptions(PluginOptions):
    """A traced module keeps the batch axis symbolic: the batch range is not part of its identity."""

    precision: str = "fp32"
    device: str = "cpu"
    script: bool = False  # torch.jit.script instead of trace


class TorchScriptExporter(Exporter):
    name = "torchscript"
    aliases = ("ts", "jit")
    suffix = ".pt"
    requires = ("torch",)
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16", "bf16")
    check_runtime = "torchscript"
    Options = TorchScriptOptions

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        import torch

        module = module_for(model.build(), options.device, options.precision)
        example = example_inputs(model, options.batch.opt).to(options.device, torch_dtype(options.precision))
        # TorchScript is deprecated upstream (FutureWarning on every call); users chose it knowingly.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            graph = torch.jit.script(module) if options.script else torch.jit.trace(module, example, check_trace=False)
            frozen = torch.jit.freeze(graph.eval())
        torch.jit.save(frozen, str(out_dir / "model.pt"))
        return "model.pt", {"method": "script" if options.script else "trace"}
