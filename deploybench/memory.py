"""Memory figures for one cell: host RSS sampled in the background, device memory from NVML."""

from __future__ import annotations

import os
import resource
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class MemoryReport:
    baseline_rss_mb: float
    peak_rss_mb: float
    peak_device_mb: float | None

    @property
    def rss_growth_mb(self) -> float:
        return self.peak_rss_mb - self.baseline_rss_mb


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


class MemorySampler:
    """Samples this process's RSS (and its NVML GPU memory) on a background thread."""

    def __init__(self, interval_s: float = 0.01) -> None:
        import psutil

        self._process = psutil.Process(os.getpid())
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deploybench-memory", daemon=True)
        self._nvml = _NvmlProbe()
        self.baseline = _rss_bytes(self._process)
        self.peak = self.baseline
        self.peak_device: int | None = None

    def _sample(self) -> None:
        self.peak = max(self.peak, _rss_bytes(self._process))
        device = self._nvml.used_by(os.getpid())
        if device is not None:
            self.peak_device = max(self.peak_device or 0, device)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        # The kernel's own high-water mark catches spikes between samples.
        self.peak = max(self.peak, _kernel_peak_rss_bytes())
        self._nvml.close()

    def report(self, allocator_peak: int | None = None) -> MemoryReport:
        device = max(filter(None, (self.peak_device, allocator_peak)), default=None)
        return MemoryReport(baseline_rss_mb=self.baseline / 2**20, peak_rss_mb=self.peak / 2**20,
                            peak_device_mb=device / 2**20 if device is not None else None)


class _NvmlProbe:
    """Per-process GPU memory via NVML, or nothing when NVML or a GPU is absent."""

    def __init__(self) -> None:
        self._handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no library, no driver, no GPU
            self._nvml = None

    def used_by(self, pid: int) -> int | None:
        if not self._handles:
            return None
        total = 0
        for handle in self._handles:
            for proc in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == pid and proc.usedGpuMemory:
                    total += proc.usedGpuMemory
        return total or None

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
