"""torch.compile with inductor. Compilation happens on the first call of each batch size,
so the harness's first-inference time is the compile time, reported apart from steady state."""

from __future__ import annotations

from typing import Any

from deploybench.runtimes.torch_eager import TorchEagerRuntime

COMPILE_MODES = ("default", "max-autotune", "reduce-overhead", "max-autotune-no-cudagraphs")


class TorchCompileRuntime(TorchEagerRuntime):
    name = "torch-compile"
    aliases = ("compile", "inductor")
    call = "compiled forward"

    def _wrap(self, module: Any) -> Any:
        import torch

        from deploybench.errors import UsageError

        mode = self.options.compile_mode
        if mode not in COMPILE_MODES:
            raise UsageError(f"unknown torch.compile mode {mode!r}; choose from {', '.join(COMPILE_MODES)}")
        dynamic = self.options.dynamic_batch
        self.info.update(
            compile_mode=mode,
            backend="inductor",
            compile_time="first inference of each batch size",
            batch_shape="dynamic" if dynamic else "static",
        )
        return torch.compile(module, mode=mode, backend="inductor", dynamic=dynamic)
