"""torch.export + AOTInductor: a compiled ``.pt2`` package for CPU or CUDA.

CPU kernels ask OpenMP for their thread count at run time (see ``INDUCTOR_CONFIGS``), so one
package follows the runtime's ``--threads``. CUDA packages are compiled with TF32 off, so an
fp32 package computes IEEE fp32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploybench.exporters.base import Exporter, ExportOptions, example_inputs, trace_batch
from deploybench.models import ModelSpec
from deploybench.torch_utils import module_for, set_tf32, torch_dtype

# Inductor bakes `#pragma omp parallel num_threads(N)` into CPU kernels, N being torch's thread
# count at export, whenever that differs from os.cpu_count(): a package exported under one
# thread setting then runs N threads whatever the runtime sets (N above the cores: threads
# queue for them; below: cores idle). Dynamic threads make every kernel ask OpenMP at run time,
# so the package follows the runtime's --threads like every other runtime.
INDUCTOR_CONFIGS: dict[str, Any] = {"cpp.dynamic_threads": True}


class AotiExporter(Exporter):
    name = "aoti"
    aliases = ("aotinductor", "pt2", "torch-export")
    suffix = ".pt2"
    requires = ("torch",)
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16", "bf16")
    check_runtime = "aoti"

    def cache_identity(self, options: ExportOptions) -> dict[str, Any]:
        # Packages compiled with other Inductor settings (threads baked in) are other artifacts.
        return {**super().cache_identity(options), "inductor_configs": INDUCTOR_CONFIGS}

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        import torch

        module = module_for(model.build(), options.device, options.precision)
        example = example_inputs(model, trace_batch(options)).to(options.device, torch_dtype(options.precision))
        dynamic = None
        if options.batch.dynamic:
            dynamic = ({0: torch.export.Dim("batch", min=options.batch.min, max=options.batch.max)},)
        if options.device.startswith("cuda"):
            set_tf32(False)  # Triton matmul templates take allow_tf32 from the flags at compile time
        with torch.no_grad():
            program = torch.export.export(module, (example,), dynamic_shapes=dynamic)
            path = out_dir / "model.pt2"
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(path), inductor_configs=dict(INDUCTOR_CONFIGS)
            )
        return path.name, {
            "inductor_configs": dict(INDUCTOR_CONFIGS),
            "tf32": False if options.device.startswith("cuda") else None,
        }
