"""Runtime base: load an artifact, put inputs where the runtime reads them, run, hand back numpy.

Runtimes never time themselves: the harness owns the clock and calls ``infer`` and
``synchronize`` around each iteration. Construction is cheap; heavy imports and loading
happen in ``load``. ``info`` records what the runtime really used (precision, threads,
execution provider) so results state the setting they were measured under.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from deploybench import registry
from deploybench.artifact import Artifact
from deploybench.batch import Batch
from deploybench.errors import RuntimeLoadError, UnsupportedError
from deploybench.plugin_options import PluginOptions


def usable_cpus() -> set[int]:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def physical_cores(cpus: set[int] | None = None, sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """Physical cores among the CPUs this process may use (SMT siblings count once).

    What ONNX Runtime and OpenVINO default to. Read from sysfs topology; where that is
    missing, every usable CPU counts as a core.
    """
    cpus = usable_cpus() if cpus is None else cpus
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(
                (
                    topology.joinpath("physical_package_id").read_text().strip(),
                    topology.joinpath("core_id").read_text().strip(),
                )
            )
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(len(cores), 1)


def default_threads() -> int:
    return physical_cores()


@dataclass(frozen=True)
class RuntimeOptions:
    """Settings a user can give a runtime; each runtime reads the ones it understands."""

    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None  # None: the physical cores this process may use, recorded as a number
    mode: str = "auto"  # openvino: latency|throughput|auto (auto: latency at batch 1)
    compile_mode: str = "default"  # torch-compile: default|max-autotune|reduce-overhead
    channels_last: bool = False
    graph_optimization: str = "all"  # onnxruntime: disable|basic|extended|all
    provider: str | None = None  # onnxruntime execution provider; None picks by device
    cuda_graphs: bool = False
    io_binding: bool = True
    # False: run the shape the cell times (OpenVINO reshapes, ONNX Runtime fixes the batch
    # dimension); True: keep the artifact's dynamic batch, to measure what it costs.
    dynamic_batch: bool = False

    def resolved_threads(self) -> int:
        return self.threads or default_threads()


class Runtime(ABC):
    """One inference runtime. Use as ``with Runtime(opts).load(artifact) as rt: ...``."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    formats: ClassVar[tuple[str, ...]]  # artifact formats it loads
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    # Precisions that exist on CUDA devices only (TF32 is an NVIDIA tensor-core mode).
    cuda_only_precisions: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    # The timed region, in words, stored with every measurement. A runtime whose region depends
    # on the device or options (host vs device-resident buffers) sets its own in ``_load``.
    timed_region: str = "host inputs already prepared; infer + synchronize"
    # The settings this runtime reads beyond device, precision and threads, validated when built.
    Options: ClassVar[type[PluginOptions]] = PluginOptions

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        self.options = options or RuntimeOptions()
        self.info: dict[str, Any] = {}
        self.artifact: Artifact | None = None
        self._loaded = False

    # -- lifecycle -------------------------------------------------------------------
    @classmethod
    def precisions_on(cls, device: str) -> tuple[str, ...]:
        """The precisions this runtime offers on ``device`` (tf32 only on CUDA)."""
        cuda = device.startswith("cuda")
        return tuple(p for p in cls.precisions if cuda or p not in cls.cuda_only_precisions)

    @classmethod
    def supports(cls, fmt: str, device: str, precision: str) -> str | None:
        """Why this runtime cannot run the combination, or None if it can."""
        if fmt not in cls.formats:
            return f"{cls.name} runs {', '.join(cls.formats)} artifacts, not {fmt}"
        if device not in cls.devices:
            return f"{cls.name} runs on {', '.join(cls.devices)}, not {device}"
        if precision not in cls.precisions:
            return f"{cls.name} supports precisions {', '.join(cls.precisions)}, not {precision}"
        if precision in cls.cuda_only_precisions and not device.startswith("cuda"):
            return f"{precision} is a CUDA precision; {cls.name} on {device} runs {precision} as fp32, so use fp32"
        return None

    def load(self, artifact: Artifact) -> Runtime:
        registry.runtimes.require(self.name)
        reason = self.supports(artifact.format, self.options.device, self.options.precision)
        if reason:
            raise UnsupportedError(reason)
        if artifact.path is not None and not artifact.file.exists():
            raise RuntimeLoadError(f"{artifact.file} does not exist; export it again")
        self.artifact = artifact
        self.info = {"device": self.options.device, "precision": self.options.precision}
        try:
            self._load(artifact)
        except BaseException:
            self._unload()  # what a failed load had made (an engine without a context) goes now
            raise
        self._loaded = True
        return self

    def unload(self) -> None:
        if self._loaded:
            self._unload()
            self._loaded = False

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()

    # -- convenience ------------------------------------------------------------------
    def run(self, batch: Batch) -> list[np.ndarray]:
        """prepare + infer + synchronize + outputs, for checks and parity (not timed)."""
        feeds = self.prepare(batch)
        self.infer(feeds)
        self.synchronize()
        return self.outputs()

    def synchronize(self) -> None:
        """Wait for queued device work; CPU runtimes return from ``infer`` when done."""

    def cuda_stream(self) -> Any:
        """The CUDA stream the runtime launches on, for event timing; None when unseen or on CPU."""
        return None

    # What ``last_call_ms`` reads, for the row; None: the runtime keeps no clock of its own.
    own_clock: str | None = None

    def last_call_ms(self) -> float | None:
        """The runtime's own time for the call that just returned (read outside the timed
        region), where it keeps one: the figure its own benchmark tool prints."""
        return None

    def cross_check(
        self, input_shape: tuple[int, ...], median_ms: float, device_median_ms: float | None
    ) -> dict[str, Any] | None:
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
        """Release the model; the default drops references and lets GC do the rest.

        Also called after a ``_load`` that failed part-way, so it must accept any state
        ``__init__`` declared."""

    @abstractmethod
    def prepare(self, batch: Batch) -> Any:
        """Put a host batch where the runtime reads it (device memory, bound buffers).

        ``batch`` is one array, or a tuple of arrays for a model with several inputs (only
        ONNX files have those, so only the runtimes that read ONNX need to handle it)."""

    @abstractmethod
    def infer(self, feeds: Any) -> None:
        """Run once on prepared feeds, keeping the outputs for ``outputs``."""

    @abstractmethod
    def outputs(self) -> list[np.ndarray]:
        """Outputs of the last ``infer`` as float32-comparable numpy arrays on the host."""


class ConcurrentRuntime(Runtime):
    """A runtime that can keep several requests in flight (OpenVINO's throughput mode).

    The harness drives it and owns the clock: it waits for an idle slot, timestamps, and
    submits with a callback that the runtime calls (from any thread) when that request is
    done. ``infer`` stays one synchronous call, for the first inference and parity.
    """

    @abstractmethod
    def requests_in_flight(self) -> int:
        """Requests kept busy for the prepared feeds; 1 means the harness times ``infer`` calls."""

    @abstractmethod
    def wait_idle(self) -> None:
        """Block until ``submit`` can start a request at once."""

    @abstractmethod
    def submit(self, feeds: Any, done: Callable[[], None]) -> None:
        """Start one request on ``feeds``; call ``done()`` when its outputs are ready."""

    @abstractmethod
    def wait_all(self) -> None:
        """Block until every submitted request is done."""
