"""Deliberately faulty plugins and a tiny model, for the fault-injection tests (and one healthy
runtime that counts its calls, to tell which checks ran inference).

Every class subclasses a real base (the eager PyTorch runtime, the TorchScript exporter)
and breaks in one place, so a sweep meets the fault exactly where a real backend would.
Tests register them with ``registry.runtimes.register`` / ``registry.exporters.register``;
isolated worker processes import this module again through ``dynamic_plugin_modules``.

``installed()`` registers them in the test process and marks it as the host; the
segfault and the hang refuse to fire there (they would take pytest down with them). A
worker only imports plugin modules, so in a child of a marked host this module registers
its plugins on import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.exporters.base import ExportOptions
from deploybench.exporters.torchscript import TorchScriptExporter
from deploybench.models import InputSpec, ModelSpec
from deploybench.runtimes.torch_eager import TorchEagerRuntime
from deploybench.runtimes.torchscript import TorchScriptRuntime

GUARD_ENV = "DEPLOYBENCH_FAULT_HOST_PID"
STALL_ENV = "DEPLOYBENCH_FAULT_STALL_EXPORT"  # PartialExporter: stop half-way and wait to be killed
EXPORT_LOG_ENV = "DEPLOYBENCH_FAULT_EXPORT_LOG"  # SlowExporter: append one line per real export
TINY_NET = "faulty_plugins:tiny_net"


def tiny_net() -> Any:
    """A model small enough that a worker spends its time importing torch, not running it."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    )


tiny_net.input_spec = InputSpec(name="input", shape=(3, 32, 32))  # type: ignore[attr-defined]


def _refuse_in_host(what: str) -> None:
    if os.environ.get(GUARD_ENV) == str(os.getpid()):
        raise RuntimeError(f"refusing to {what} the test process; run this runtime with isolate=True")


class _FaultyEager(TorchEagerRuntime):
    """The eager runtime, minus its aliases (they would shadow the real 'torch' ones)."""

    aliases = ()


class SegfaultRuntime(_FaultyEager):
    name = "fault-segfault"

    def infer(self, feeds: Any) -> None:
        _refuse_in_host("segfault")
        os.kill(os.getpid(), signal.SIGSEGV)


class KilledRuntime(_FaultyEager):
    """Dies the way the kernel's out-of-memory killer ends a process: SIGKILL, no cleanup."""

    name = "fault-killed"

    def infer(self, feeds: Any) -> None:
        _refuse_in_host("SIGKILL")
        os.kill(os.getpid(), signal.SIGKILL)


class SegfaultAtTwoRuntime(_FaultyEager):
    """Healthy at every batch size but 2: one worker's cells around a crash."""

    name = "fault-segfault-b2"

    def infer(self, feeds: Any) -> None:
        if len(feeds) == 2:
            _refuse_in_host("segfault")
            os.kill(os.getpid(), signal.SIGSEGV)
        super().infer(feeds)


class HangRuntime(_FaultyEager):
    name = "fault-hang"

    def infer(self, feeds: Any) -> None:
        _refuse_in_host("hang")
        while True:
            time.sleep(3600)


class MemoryErrorRuntime(_FaultyEager):
    name = "fault-memoryerror"

    def infer(self, feeds: Any) -> None:
        raise MemoryError("simulated: cannot allocate 64 GiB for the activations")


class CudaOomRuntime(_FaultyEager):
    name = "fault-cuda-oom"

    def infer(self, feeds: Any) -> None:
        import torch

        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.11 GiB total "
            "capacity; 70.02 GiB already allocated)"
        )


class NanRuntime(_FaultyEager):
    """Runs the real model, then hands back NaN in place of every output."""

    name = "fault-nan"

    def outputs(self) -> list[np.ndarray]:
        return [np.full_like(out, np.nan) for out in super().outputs()]


class SlowRuntime(_FaultyEager):
    """The real model, then a stall 9x as long as the call: ten times eager, as a misconfigured runtime runs
    (threads fighting for cores). Relative to the call, so a loaded machine slows both alike."""

    name = "fault-slow-infer"
    STALL_FACTOR = 9.0

    def infer(self, feeds: Any) -> None:
        started = time.perf_counter()
        super().infer(feeds)
        time.sleep(self.STALL_FACTOR * (time.perf_counter() - started))


class CountingRuntime(_FaultyEager):
    """Healthy: the eager runtime, counting its calls in ``info`` (which the row keeps)."""

    name = "fault-free-counting"

    def infer(self, feeds: Any) -> None:
        self.info["infer_calls"] = int(self.info.get("infer_calls", 0)) + 1
        super().infer(feeds)


class FirstImageFromTwoRuntime(_FaultyEager):
    """From batch 2 on, every image gets the first image's outputs: a batch baked into a
    reshape, or a buffer that only the first image's rows reach."""

    name = "fault-first-image-b2"

    def outputs(self) -> list[np.ndarray]:
        return [np.repeat(out[:1], len(out), axis=0) for out in super().outputs()]


MISSING_MODULE = "deploybench_fault_no_such_module"
MISSING_EXTRA = "fault-extra"


class NeedsMissingRuntime(_FaultyEager):
    """Needs a library that is not installed, which the extra named here would install."""

    name = "fault-needs-missing"
    requires = ("torch", MISSING_MODULE)
    extra = MISSING_EXTRA


class NeedsMissingExporter(TorchScriptExporter):
    name = "fault-needs-missing"
    aliases = ()
    requires = ("torch", MISSING_MODULE)
    extra = MISSING_EXTRA


class BrokenExporter(TorchScriptExporter):
    """A format whose export raises inside the library call."""

    name = "fault-export"
    aliases = ()
    check_runtime = None

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        raise RuntimeError("simulated exporter crash: unsupported operator aten::fault")


class BrokenFormatRuntime(TorchScriptRuntime):
    """The runtime that would load BrokenExporter's artifacts (it never gets one)."""

    name = "fault-export-rt"
    aliases = ()
    formats = ("fault-export",)


class PartialExporter(TorchScriptExporter):
    """Writes half of its file, then (when STALL_ENV is set) waits to be killed mid-export."""

    name = "fault-partial"
    aliases = ()
    check_runtime = None

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        payload = np.arange(1 << 16, dtype=np.float32).tobytes()
        with open(out_dir / "model.bin", "wb") as fh:
            fh.write(payload[: len(payload) // 2])
            fh.flush()
            os.fsync(fh.fileno())
            if os.environ.get(STALL_ENV):
                (out_dir / "half-written").touch()  # tells the test it is time to kill us
                while True:
                    time.sleep(3600)
            fh.write(payload[len(payload) // 2 :])
        return "model.bin", {}


class SlowExporter(TorchScriptExporter):
    """A real TorchScript export that takes long enough for two processes to overlap."""

    name = "fault-slow"
    aliases = ()
    check_runtime = None

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        log = os.environ.get(EXPORT_LOG_ENV)
        if log:
            with open(log, "a") as fh:
                fh.write(f"{os.getpid()}\n")
        time.sleep(1.5)
        return super()._export(model, options, out_dir)


class TrustMarker:
    """Unpickling this runs code: it creates the file named at pickling time."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (_touch, (self.path,))


def _touch(path: str) -> str:
    Path(path).touch()
    return path


RUNTIMES = (
    SegfaultRuntime,
    SegfaultAtTwoRuntime,
    KilledRuntime,
    HangRuntime,
    MemoryErrorRuntime,
    CudaOomRuntime,
    NanRuntime,
    BrokenFormatRuntime,
    NeedsMissingRuntime,
    SlowRuntime,
    CountingRuntime,
    FirstImageFromTwoRuntime,
)
EXPORTERS = (BrokenExporter, PartialExporter, SlowExporter, NeedsMissingExporter)


def register_all() -> None:
    """Register every faulty plugin in this process (workers re-import this module)."""
    from deploybench import registry

    for runtime in RUNTIMES:
        registry.runtimes.register(runtime)
    for exporter in EXPORTERS:
        registry.exporters.register(exporter)


def unregister_all() -> None:
    from deploybench import registry

    for runtime in RUNTIMES:
        registry.runtimes.unregister(runtime.name)
    for exporter in EXPORTERS:
        registry.exporters.unregister(exporter.name)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Faulty plugins registered here, this process marked as the host, both undone after."""
    previous = os.environ.get(GUARD_ENV)
    os.environ[GUARD_ENV] = str(os.getpid())
    register_all()
    try:
        yield
    finally:
        unregister_all()
        if previous is None:
            os.environ.pop(GUARD_ENV, None)
        else:
            os.environ[GUARD_ENV] = previous


if os.environ.get(GUARD_ENV) not in (None, str(os.getpid())):
    register_all()  # a worker of a marked host: it imports this module and expects the plugins
