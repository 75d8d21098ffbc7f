"""torch.export + AOTInductor: a compiled ``.pt2`` package for CPU or CUDA.

Inductor writes the OpenMP thread count into the CPU kernels it generates
(``#pragma omp parallel num_threads(N)``), so the package is compiled for the thread count
it will run with: that count is part of the cache key and the manifest. CUDA packages are
compiled with TF32 off, so an fp32 package computes IEEE fp32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploybench.exporters.base import ExportOptions, Exporter, example_inputs, trace_batch
from deploybench.models import ModelSpec
from deploybench.torch_utils import module_for, set_tf32, torch_dtype


def compiled_threads(options: ExportOptions) -> int | None:
    """The OpenMP threads a CPU package is compiled for (None on CUDA, where it does not apply)."""
    if options.device != "cpu":
        return None
    from deploybench.runtimes.base import default_threads

    return options.threads or default_threads()


class AotiExporter(Exporter):
    name = "aoti"
    aliases = ("aotinductor", "pt2", "torch-export")
    suffix = ".pt2"
    requires = ("torch",)
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16", "bf16")
    check_runtime = "aoti"

    def cache_identity(self, options: ExportOptions) -> dict[str, Any]:
        return {**super().cache_identity(options), "compiled_threads": compiled_threads(options)}

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        import torch
        import torch._inductor.config as inductor_config

        module = module_for(model.build(), options.device, options.precision)
        example = example_inputs(model, trace_batch(options)).to(options.device, torch_dtype(options.precision))
        dynamic = None
        if options.batch.dynamic:
            dynamic = ({0: torch.export.Dim("batch", min=options.batch.min, max=options.batch.max)},)
        threads = compiled_threads(options)
        if options.device.startswith("cuda"):
            set_tf32(False)  # Triton matmul templates take allow_tf32 from the flags at compile time
        with torch.no_grad(), inductor_config.patch({"cpp.threads": threads or -1}):
            program = torch.export.export(module, (example,), dynamic_shapes=dynamic)
            path = out_dir / "model.pt2"
            torch._inductor.aoti_compile_and_package(program, package_path=str(path))
        return path.name, {"compiled_threads": threads, "tf32": False if options.device.startswith("cuda") else None}
