"""Latency statistics from raw samples, and the confidence interval of their median."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Stats:
    """Latency statistics in milliseconds, derived from raw samples."""

    n: int
    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: float
    std: float
    cv: float

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> Stats:
        if not samples_ms:
            raise ValueError("no samples")
        data = sorted(samples_ms)
        n = len(data)
        mean = sum(data) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in data) / (n - 1)) if n > 1 else 0.0
        return cls(
            n=n,
            min=data[0],
            mean=mean,
            median=percentile(data, 50),
            p90=percentile(data, 90),
            p95=percentile(data, 95),
            p99=percentile(data, 99),
            max=data[-1],
            std=std,
            cv=std / mean if mean > 0 else 0.0,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stats:
        """Stats as ``asdict`` wrote them; a figure the writer did not know is NaN."""
        return cls(**{f.name: data.get(f.name, math.nan) for f in fields(cls)})


def percentile(sorted_data: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if len(sorted_data) == 1:
        return sorted_data[0]
    rank = (len(sorted_data) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_data) - 1)
    return sorted_data[low] + (sorted_data[high] - sorted_data[low]) * (rank - low)


def median_interval(sorted_data: list[float], z: float = 1.96) -> tuple[float, float]:
    """Distribution-free 95 % confidence interval of the median, from order statistics.

    The ranks ``n/2 ∓ z·√n/2`` (the binomial's normal approximation, 1-based, widened
    outwards); with 10 samples this is the whole range, so a short run never claims precision.
    """
    n = len(sorted_data)
    low = math.floor(n / 2 - z * math.sqrt(n) / 2)
    high = math.ceil(1 + n / 2 + z * math.sqrt(n) / 2)
    return sorted_data[max(low - 1, 0)], sorted_data[min(high - 1, n - 1)]


def relative_half_width(interval: tuple[float, float], median: float) -> float:
    return (interval[1] - interval[0]) / (2 * median) if median > 0 else 0.0


def per_image_ms(median_ms: float, batch: int, requests_in_flight: int = 1) -> float:
    """What one image costs: a call's median latency over the images in flight at once. With N
    requests overlapping, median / batch would be N times the cost the window's img/s shows."""
    return median_ms / (batch * requests_in_flight)
