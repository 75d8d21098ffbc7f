"""torch.compile with inductor. Compilation happens on the first call of each batch size,
so the harness's first-inference time is the compile time, reported apart from steady state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploybench.plugin_options import one_of
from deploybench.runtimes.torch_eager import TorchEagerRuntime, TorchOptions

COMPILE_MODES = ("default", "max-autotune", "reduce-overhead", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class CompileOptions(TorchOptions):
    compile_mode: str = "default"

    def check(self) -> None:
        one_of("--compile-mode", self.compile_mode, COMPILE_MODES)


class TorchCompileRuntime(TorchEagerRuntime):
    name = "torch-compile"
    aliases = ("compile", "inductor")
    call = "compiled forward"
    Options = CompileOptions

    def _wrap(self, module: Any) -> Any:
        import torch

        mode = CompileOptions.pick(self.options).compile_mode
        dynamic = self.options.dynamic_batch
        self.info.update(
            compile_mode=mode,
            backend="inductor",
            compile_time="first inference of each batch size",
            batch_shape="dynamic" if dynamic else "static",
        )
        return torch.compile(module, mode=mode, backend="inductor", dynamic=dynamic)
