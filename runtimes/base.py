"""Runtime base: load an artifact, put inputs where the runtime reads them, run, hand back numpy.

Runtimes never time themselves: the harness owns the clock and calls ``infer`` and
``synchronize`` around each iteration. Construction is cheap; heavy imports and loading
happen in ``load``. ``info`` records what the runtime really used (precision, threads,
execution provider) so results state the setting they were measured under.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from deploybench import registry
from deploybench.artifact import Artifact
from deploybench.errors import RuntimeLoadError, UnsupportedError


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class RuntimeOptions:
    """Settings a user can give a runtime; each runtime reads the ones it understands."""

    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None  # None: every usable core, recorded as a number
    mode: str = "auto"  # openvino: latency|throughput|auto (auto: latency at batch 1)
    compile_mode: str = "default"  # torch-compile: default|max-autotune|reduce-overhead
    channels_last: bool = False
    graph_optimization: str = "all"  # onnxruntime: disable|basic|extended|all
    provider: str | None = None  # onnxruntime execution provider; None picks by device
    cuda_graphs: bool = False
    io_binding: bool = True

    def resolved_threads(self) -> int:
        return self.threads or default_threads()


class Runtime(ABC):
    """One inference runtime. Use as ``with Runtime(opts).load(artifact) as rt: ...``."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    formats: ClassVar[tuple[str, ...]]  # artifact formats it loads
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    # The timed region, in words, stored with every measurement.
    timed_region: ClassVar[str] = "host inputs already prepared; infer + synchronize"

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        self.options = options or RuntimeOptions()
        self.info: dict[str, Any] = {}
        self.artifact: Artifact | None = None
        self._loaded = False

    # -- lifecycle -------------------------------------------------------------------
    @classmethod
    def supports(cls, fmt: str, device: str, precision: str) -> str | None:
        """Why this runtime cannot run the combination, or None if it can."""
        if fmt not in cls.formats:
            return f"{cls.name} runs {', '.join(cls.formats)} artifacts, not {fmt}"
        if device not in cls.devices:
            return f"{cls.name} runs on {', '.join(cls.devices)}, not {device}"
        if precision not in cls.precisions:
            return f"{cls.name} supports precisions {', '.join(cls.precisions)}, not {precision}"
        return None

    def load(self, artifact: Artifact) -> "Runtime":
        registry.runtimes.require(self.name)
        reason = self.supports(artifact.format, self.options.device, self.options.precision)
        if reason:
            raise UnsupportedError(reason)
        if artifact.path is not None and not artifact.file.exists():
            raise RuntimeLoadError(f"{artifact.file} does not exist; export it again")
        self.artifact = artifact
        self.info = {"device": self.options.device, "precision": self.options.precision}
        self._load(artifact)
        self._loaded = True
        return self

    def unload(self) -> None:
        if self._loaded:
            self._unload()
            self._loaded = False

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()

    # -- convenience ------------------------------------------------------------------
    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """prepare + infer + synchronize + outputs, for checks and parity (not timed)."""
        feeds = self.prepare(batch)
        self.infer(feeds)
        self.synchronize()
        return self.outputs()

    def items_per_call(self, batch: int) -> int:
        """Images one ``infer`` call processes (more than ``batch`` when requests run in parallel)."""
        return batch

    def synchronize(self) -> None:
        """Wait for queued device work; CPU runtimes return from ``infer`` when done."""

    def cuda_stream(self) -> Any:
        """The CUDA stream the runtime launches on, for event timing; None when unseen or on CPU."""
        return None

    def device_memory_peak(self) -> int | None:
        """Peak device memory in bytes as the runtime's allocator saw it, when it can tell."""
        return None

    def cross_check(self, input_shape: tuple[int, ...], median_ms: float,
                    device_median_ms: float | None) -> dict[str, Any] | None:
        """The runtime's own benchmark tool on the same artifact and shape, after unloading (e.g. trtexec).

        Returns the tool's figures and the ratio of medians for the row's info; None where the
        runtime has no such tool or it is not installed.
        """
        return None

    # -- hooks ---------------------------------------------------------------------------
    @abstractmethod
    def _load(self, artifact: Artifact) -> None:
        """Load and compile; fill ``self.info`` with what was really used."""

    def _unload(self) -> None:
        """Release the model; the default drops references and lets GC do the rest."""

    @abstractmethod
    def prepare(self, batch: np.ndarray) -> Any:
        """Put a host batch where the runtime reads it (device memory, bound buffers)."""

    @abstractmethod
    def infer(self, feeds: Any) -> None:
        """Run once on prepared feeds, keeping the outputs for ``outputs``."""

    @abstractmethod
    def outputs(self) -> list[np.ndarray]:
        """Outputs of the last ``infer`` as float32-comparable numpy arrays on the host."""
