"""Peak memory of isolated workers: what the regression gate's memory rule compares."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from deploybench import memory, registry
from deploybench.cache import ArtifactCache
from deploybench.harness import MeasurePolicy
from deploybench.memory import MemoryReport, MemorySampler
from deploybench.results import Results
from deploybench.sweep import Sweep, SweepConfig


def test_a_workers_peak_rss_is_its_own_not_its_parents() -> None:
    """A fork+exec child must not inherit the parent's peak RSS (ru_maxrss survives execve; VmHWM does not)."""
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page so it is resident
    code = (
        "from deploybench.memory import MemorySampler\n"
        "with MemorySampler() as m:\n    pass\n"
        "print(m.report().peak_rss_mb)"
    )
    child_peak = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert child_peak < 300, child_peak
    del ballast


@pytest.fixture
def memory_plugins() -> Iterator[None]:
    import memory_plugins

    for plugin in memory_plugins.PLUGINS:
        registry.runtimes.register(plugin)
    try:
        yield
    finally:
        for plugin in memory_plugins.PLUGINS:
            registry.runtimes.unregister(plugin.name)
        if "memory_plugins" in registry.runtimes.dynamic_modules:  # later sweeps need not import it
            registry.runtimes.dynamic_modules.remove("memory_plugins")


def test_the_memory_window_holds_the_inference_and_not_the_parity_check(tmp_path: Path, memory_plugins: None) -> None:
    from faulty_plugins import TINY_NET
    from memory_plugins import BALLAST_MB

    config = SweepConfig(
        models=(TINY_NET,),
        runtimes=("torch", "memtest-parity-heavy", "memtest-inference-heavy"),
        # At batch 1 parity runs the two images again; at batch 2 it reads the last timed call's outputs.
        batches=(1, 2),
        policy=MeasurePolicy.quick(),
        isolate=True,
        parity_images=2,
    )
    sweep = Sweep(config, ArtifactCache(tmp_path / "cache"), Results(), work_dir=tmp_path / "refs")
    rows = {(row.runtime, row.batch): row for row in sweep.run().rows}
    for row in rows.values():
        assert row.status == "ok", row.message
        assert row.parity_verdict == "pass"  # parity did run, with its ballast
        assert row.memory.rss_source.startswith("kernel high-water mark")
    for batch in config.batches:
        plain, parity_heavy, inference_heavy = (rows[name, batch] for name in config.runtimes)
        # Against the plain eager runtime (whose growth is torch's own), the same ballast counts when
        # the inference allocates it, and not when the parity check does.
        base = plain.memory.rss_growth_mb
        assert inference_heavy.memory.rss_growth_mb - base > 0.9 * BALLAST_MB, batch
        assert abs(parity_heavy.memory.rss_growth_mb - base) < 0.25 * BALLAST_MB, batch


class _FakeNvml:
    """pynvml's calls the sampler makes, for one GPU whose process list the test sets."""

    def __init__(self, processes: list[tuple[int, int]], whole_gpu: int) -> None:
        self.processes, self.whole_gpu = processes, whole_gpu

    def nvmlDeviceGetComputeRunningProcesses(self, handle: object) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.processes]

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> SimpleNamespace:
        return SimpleNamespace(used=self.whole_gpu)

    def nvmlShutdown(self) -> None: ...


def _sampled_with(monkeypatch: pytest.MonkeyPatch, nvml: _FakeNvml, gpu: bool = True) -> MemoryReport:
    def probe(self: memory._NvmlProbe, enabled: bool = True) -> None:
        self._nvml, self._handles = (nvml, ["gpu0"]) if enabled else (None, [])

    monkeypatch.setattr(memory._NvmlProbe, "__init__", probe)
    with MemorySampler(interval_s=0.001, gpu=gpu) as sampler:
        pass
    return sampler.report()


MB = 2**20


def test_device_memory_is_this_processs_where_nvml_lists_its_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    report = _sampled_with(monkeypatch, _FakeNvml([(os.getpid(), 300 * MB), (1, 900 * MB)], whole_gpu=1200 * MB))
    assert report.peak_device_mb == 300 and report.device_source.startswith(memory.NVML_DEVICE)


def test_device_memory_falls_back_to_the_whole_gpu_named_so_where_nvml_lists_other_pids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In a container without --pid=host, NVML lists the host's PID of this very process.
    report = _sampled_with(monkeypatch, _FakeNvml([(4242, 300 * MB)], whole_gpu=700 * MB))
    assert report.peak_device_mb == 700 and report.device_source.startswith(memory.NVML_WHOLE_GPU)


def test_a_cpu_cell_reads_no_device_memory_even_beside_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    report = _sampled_with(monkeypatch, _FakeNvml([(4242, 300 * MB)], whole_gpu=700 * MB), gpu=False)
    assert report.peak_device_mb is None and report.device_source is None
