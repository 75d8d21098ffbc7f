"""Helpers the tests share: plugin parameters from the registries, typed row parts."""

from __future__ import annotations

from typing import Any

import pytest

from deploybench import registry
from deploybench.memory import MemoryReport
from deploybench.parity import OutputParity, Parity
from deploybench.results import ArtifactRecord
from deploybench.stats import Stats


def available_exporters() -> list:
    """Every registered exporter; unavailable ones skip with their reason."""
    params = []
    for name in registry.exporters.names():
        try:
            ok = registry.exporters.availability(name)
            needs_gpu = "cpu" not in registry.exporters.get(name).devices
        except Exception as exc:  # a plugin that fails to import is reported, not hidden
            params.append(pytest.param(name, marks=pytest.mark.skip(reason=f"{name}: {exc}")))
            continue
        if not ok.ok:
            params.append(pytest.param(name, marks=pytest.mark.skip(reason=ok.reason)))
        elif registry.exporters.get(name).in_memory:
            params.append(pytest.param(name, marks=pytest.mark.skip(reason=f"{name} is the module itself: no file")))
        elif needs_gpu:
            params.append(
                pytest.param(name, marks=pytest.mark.skip(reason=f"{name} exports for GPUs only; no GPU in CI"))
            )
        else:
            params.append(name)
    return params


def cpu_runtimes() -> list:
    params = []
    for name in registry.runtimes.names():
        try:
            cls = registry.runtimes.get(name)
            ok = registry.runtimes.availability(name)
        except Exception as exc:
            params.append(pytest.param(name, marks=pytest.mark.skip(reason=f"{name}: {exc}")))
            continue
        if not ok.ok:
            params.append(pytest.param(name, marks=pytest.mark.skip(reason=ok.reason)))
        elif "cpu" not in cls.devices:
            params.append(pytest.param(name, marks=pytest.mark.skip(reason=f"{name} runs on GPUs only; no GPU in CI")))
        else:
            params.append(name)
    return params


def stats(**figures: float) -> Stats:
    """Latency statistics with only ``figures`` known (the rest NaN)."""
    return Stats.from_dict(figures)


def parity(verdict: str, precision: str = "fp32", outputs: list[OutputParity] | None = None, **fields: Any) -> Parity:
    return Parity(verdict=verdict, precision=precision, tolerance={}, outputs=outputs or [], **fields)


def memory(peak_rss_mb: float, baseline_rss_mb: float = 0.0, peak_device_mb: float | None = None) -> MemoryReport:
    return MemoryReport(baseline_rss_mb=baseline_rss_mb, peak_rss_mb=peak_rss_mb, peak_device_mb=peak_device_mb)


def artifact(size_mb: float | None = None, path: str | None = None) -> ArtifactRecord:
    return ArtifactRecord(path=path, size_mb=size_mb)
