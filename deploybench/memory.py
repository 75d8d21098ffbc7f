"""Memory figures of one window: host RSS from the kernel's high-water mark, device memory from NVML."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

RSS_SOURCES = ("kernel", "sampled")
KERNEL_RSS = "kernel high-water mark (VmHWM, reset at the window's start)"
NVML_DEVICE = "NVML per-process used memory, sampled"
# Where NVML lists no process by this PID (a container without --pid=host sees host PIDs there).
NVML_WHOLE_GPU = (
    "NVML used memory of every GPU NVML sees, sampled: this process's PID is not among NVML's (a "
    "container without --pid=host?), so every process on them counts"
)


@dataclass
class MemoryReport:
    baseline_rss_mb: float
    peak_rss_mb: float
    peak_device_mb: float | None = None
    rss_source: str = KERNEL_RSS
    device_source: str | None = None  # None: no NVML-visible GPU
    # The growth as a results file recorded it (rounded from the unrounded figures); None: derived.
    recorded_growth_mb: float | None = field(default=None, repr=False)

    @property
    def rss_growth_mb(self) -> float:
        if self.recorded_growth_mb is not None:
            return self.recorded_growth_mb
        return self.peak_rss_mb - self.baseline_rss_mb

    def rounded(self) -> MemoryReport:
        """To 0.1 MB, as rows keep them; the growth is rounded from the figures before rounding."""
        return replace(
            self,
            baseline_rss_mb=round(self.baseline_rss_mb, 1),
            peak_rss_mb=round(self.peak_rss_mb, 1),
            recorded_growth_mb=round(self.rss_growth_mb, 1),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["recorded_growth_mb"]
        data["rss_growth_mb"] = round(self.rss_growth_mb, 1)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryReport:
        known: dict[str, Any] = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        known.pop("recorded_growth_mb", None)
        return cls(**known, recorded_growth_mb=data.get("rss_growth_mb"))


def _rss_bytes(process: Any) -> int:
    return process.memory_info().rss


def _kernel_peak_rss_bytes() -> int:
    """This process's own RSS high-water mark.

    VmHWM from /proc where there is one: getrusage's ru_maxrss survives execve, so a worker
    started by a large parent would report the parent's peak as its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def reset_kernel_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+: ``5`` into clear_refs); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class MemorySampler:
    """Peak host RSS and device memory of one window (``with MemorySampler() as m: ...``).

    Host RSS comes from the kernel's own high-water mark, reset when the window opens: it is
    exact and costs nothing while the window runs. Where it cannot be reset (not Linux,
    ``rss="sampled"``), a background thread samples RSS instead. Device memory always comes
    from one source, NVML's per-process figure (it sees the CUDA context, TensorRT's and ONNX
    Runtime's own allocations and torch's cache alike), sampled by that thread; where NVML lists
    no process by this PID, every GPU's, named so. The thread runs at the lowest scheduling
    priority and only when it has something to sample, so on a CPU-only machine nothing shares
    the cores with the timed loop. ``gpu=False`` (a CPU cell) reads no device memory at all.
    """

    def __init__(self, interval_s: float = 0.05, rss: str = "kernel", gpu: bool = True) -> None:
        import psutil

        assert rss in RSS_SOURCES, rss
        self._process = psutil.Process(os.getpid())
        self._interval = interval_s
        self._stop = threading.Event()
        self._nvml = _NvmlProbe(enabled=gpu)
        self._sample_rss = rss == "sampled"
        self._thread: threading.Thread | None = None
        self.baseline = self.peak = 0
        self.peak_device: int | None = None
        self.peak_whole_gpu: int | None = None
        self.rss_source = KERNEL_RSS
        self._kernel_reset = False  # the kernel's high-water mark was reset when the window opened

    def _sample(self) -> None:
        if self._sample_rss:
            self.peak = max(self.peak, _rss_bytes(self._process))
        device = self._nvml.used_by(os.getpid())
        if device is not None:
            self.peak_device = max(self.peak_device or 0, device)
        elif self._nvml.available:
            self.peak_whole_gpu = max(self.peak_whole_gpu or 0, self._nvml.used_on_devices())

    def _run(self) -> None:
        # A Linux thread is a task with its own nice value; raising it needs no privilege.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._kernel_reset = not self._sample_rss and reset_kernel_peak_rss()
        if not self._kernel_reset:
            self._sample_rss = True
        if self._sample_rss:
            self.rss_source = f"RSS sampled every {self._interval * 1e3:.0f} ms"
        self.baseline = self.peak = _rss_bytes(self._process)
        if self._sample_rss or self._nvml.available:
            self._thread = threading.Thread(target=self._run, name="deploybench-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        if self._kernel_reset:  # otherwise the mark holds everything since the process started
            self.peak = max(self.peak, _kernel_peak_rss_bytes())
        self._nvml.close()

    def report(self) -> MemoryReport:
        """The figures, each with its source; a device source only where a device figure was read."""
        device, source = self.peak_device, NVML_DEVICE
        if device is None and self.peak_whole_gpu is not None:
            device, source = self.peak_whole_gpu, NVML_WHOLE_GPU
        return MemoryReport(
            baseline_rss_mb=self.baseline / 2**20,
            peak_rss_mb=self.peak / 2**20,
            peak_device_mb=device / 2**20 if device is not None else None,
            rss_source=self.rss_source,
            device_source=f"{source} every {self._interval * 1e3:.0f} ms" if device is not None else None,
        )


class _NvmlProbe:
    """GPU memory via NVML: per process, or of the whole GPUs; nothing when NVML or a GPU is absent."""

    def __init__(self, enabled: bool = True) -> None:
        self._handles: list[Any] = []
        self._nvml: Any = None
        if not enabled:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no library, no driver, no GPU
            self._nvml = None

    @property
    def available(self) -> bool:
        return bool(self._handles)

    def used_by(self, pid: int) -> int | None:
        if not self._handles:
            return None
        total = 0
        for handle in self._handles:
            for proc in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == pid and proc.usedGpuMemory:
                    total += proc.usedGpuMemory
        return total or None

    def used_on_devices(self) -> int:
        """Memory in use on every GPU, by any process."""
        return sum(int(self._nvml.nvmlDeviceGetMemoryInfo(handle).used) for handle in self._handles)

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
