"""Shared body of the torch-family runtimes: a callable fed torch tensors on a device."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from deploybench.artifact import Artifact
from deploybench.batch import Batch, single
from deploybench.errors import RuntimeLoadError, first_line
from deploybench.runtimes.base import Runtime, RuntimeOptions
from deploybench.torch_utils import set_tf32, synchronize, tf32_enabled, to_numpy, torch_dtype

# What one timed iteration holds, by device. On the CPU there is nothing to transfer or
# synchronize, and saying so would claim work that was never done.
TIMED_REGIONS = {
    "cpu": "CPU: host tensors; {call} under inference_mode, which returns when done; outputs left as tensors",
    "cuda": "device-resident inputs; {call} under inference_mode + device synchronize; outputs left on device",
}


class TorchRuntimeBase(Runtime):
    devices = ("cpu", "cuda")
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "tf32", "fp16", "bf16")
    cuda_only_precisions: ClassVar[tuple[str, ...]] = ("tf32",)
    requires = ("torch",)
    call: ClassVar[str] = "forward"  # what is called, in the timed region's words
    timed_region = TIMED_REGIONS["cpu"].format(call="forward")

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        super().__init__(options)
        self._dtype: Any = None  # the torch dtype inputs are cast to
        self._callable: Any = None  # what _open made: a module, a scripted module, a package
        self._result: Any = None

    def _load(self, artifact: Artifact) -> None:
        import torch

        self.timed_region = TIMED_REGIONS["cuda" if self.options.device.startswith("cuda") else "cpu"].format(
            call=self.call
        )
        threads = self.options.resolved_threads()
        torch.set_num_threads(threads)
        precision = self._compute_precision(artifact)
        self._dtype = torch_dtype(precision)
        self.info.update(threads=threads, precision_used=precision, torch=torch.__version__)
        if self.options.device.startswith("cuda"):
            # torch leaves cuDNN's TF32 on by default: fp32 must mean IEEE fp32 here too. The
            # flags are read when kernels run (or compile, for torch.compile), after this.
            set_tf32(precision == "tf32")
            self.info["tf32"] = tf32_enabled()
        try:
            self._callable = self._open(artifact)
        except (RuntimeError, OSError, ValueError) as exc:  # corrupt or foreign file: the library says which
            name = artifact.file.name if artifact.path else artifact.format
            raise RuntimeLoadError(
                f"{name} could not be loaded by {self.name} ({first_line(exc)}); export it again"
            ) from exc
        if self.options.device.startswith("cuda"):  # the peak is this cell's, not earlier ones' in the process
            torch.cuda.reset_peak_memory_stats()

    def _compute_precision(self, artifact: Artifact) -> str:
        return "tf32" if self.options.precision == "tf32" else artifact.precision

    @abstractmethod
    def _open(self, artifact: Artifact) -> Any:
        """The callable to run: a module, a scripted module, a compiled package."""

    def _unload(self) -> None:
        self._callable = self._result = None

    def prepare(self, batch: Batch) -> Any:
        import torch

        return torch.from_numpy(single(batch, self.name)).to(self.options.device, self._dtype)

    def infer(self, feeds: Any) -> None:
        import torch

        with torch.inference_mode():
            self._result = self._callable(feeds)

    def synchronize(self) -> None:
        synchronize(self.options.device)

    def outputs(self) -> list[np.ndarray]:
        return to_numpy(self._result)

    def cuda_stream(self) -> Any:
        if not self.options.device.startswith("cuda"):
            return None
        import torch

        return torch.cuda.current_stream()
