"""The measurement harness: warm-up, a timed loop with a stop rule, raw samples, statistics.

The harness owns the clock. Each timed iteration is ``infer`` followed by ``synchronize``,
so asynchronous launches are never timed alone. Load, first inference (which includes
compilation for JIT runtimes) and warm-up are timed apart from the steady state.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from deploybench.runtimes.base import Runtime


@dataclass(frozen=True)
class MeasurePolicy:
    """How long to warm up and measure. Stop when both minimums are met, or at a maximum."""

    warmup_iters: int = 10
    warmup_seconds: float = 1.0
    min_iters: int = 50
    min_seconds: float = 3.0
    max_iters: int = 100_000
    max_seconds: float = 60.0
    cv_warning: float = 0.10  # flag rows whose spread is above 10 %

    @classmethod
    def quick(cls) -> "MeasurePolicy":
        """For smoke runs and tests: a short warm-up and a short timed window."""
        return cls(warmup_iters=2, warmup_seconds=0.0, min_iters=5, min_seconds=0.2, max_seconds=10.0)


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
    def from_samples(cls, samples_ms: list[float]) -> "Stats":
        if not samples_ms:
            raise ValueError("no samples")
        data = sorted(samples_ms)
        n = len(data)
        mean = sum(data) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in data) / (n - 1)) if n > 1 else 0.0
        return cls(n=n, min=data[0], mean=mean, median=percentile(data, 50), p90=percentile(data, 90),
                   p95=percentile(data, 95), p99=percentile(data, 99), max=data[-1], std=std,
                   cv=std / mean if mean > 0 else 0.0)


def percentile(sorted_data: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if len(sorted_data) == 1:
        return sorted_data[0]
    rank = (len(sorted_data) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_data) - 1)
    return sorted_data[low] + (sorted_data[high] - sorted_data[low]) * (rank - low)


@dataclass
class Measurement:
    """One timed run of one runtime at one batch size, with its raw samples."""

    batch: int
    items_per_call: int
    samples_ms: list[float]
    window_seconds: float
    first_inference_ms: float
    warmup_iters: int
    timed_region: str
    stats: Stats = field(init=False)
    warnings: list[str] = field(default_factory=list)
    # GPU time of each iteration from CUDA events on the runtime's stream, when it shows one.
    device_samples_ms: list[float] = field(default_factory=list)
    device_stats: Stats | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.stats = Stats.from_samples(self.samples_ms)
        if self.device_samples_ms:
            self.device_stats = Stats.from_samples(self.device_samples_ms)

    @property
    def ms_per_image(self) -> float:
        return self.stats.median / self.items_per_call

    @property
    def throughput(self) -> float:
        """Images per second over the wall time of the whole timed window."""
        return self.items_per_call * len(self.samples_ms) / self.window_seconds

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ms_per_image=self.ms_per_image, throughput=self.throughput)
        return data


Clock = Callable[[], int]
EventFactory = Callable[[], Any]


def cuda_event() -> Any:
    import torch

    return torch.cuda.Event(enable_timing=True)


class _DeviceTimer:
    """Start/stop CUDA events recorded on the runtime's stream around each iteration."""

    def __init__(self, stream: Any, make_event: EventFactory) -> None:
        self.stream, self.start, self.end = stream, make_event(), make_event()

    def begin(self) -> None:
        self.start.record(self.stream)

    def finish(self) -> None:
        self.end.record(self.stream)

    def elapsed_ms(self) -> float:
        """Valid once the host synchronized with the stream."""
        return float(self.start.elapsed_time(self.end))


def measure(runtime: Runtime, feeds: Any, batch: int, policy: MeasurePolicy = MeasurePolicy(),
            clock: Clock = time.perf_counter_ns, make_event: EventFactory = cuda_event) -> Measurement:
    """Warm up, then time ``infer`` + ``synchronize`` until the policy's stop rule holds.

    Host wall time per iteration is always recorded; where the runtime exposes its CUDA
    stream, CUDA events on that stream also give the GPU time of each iteration.
    """
    start = clock()
    runtime.infer(feeds)
    runtime.synchronize()
    first_ms = (clock() - start) / 1e6

    warm_start, warm_iters = clock(), 0
    while warm_iters < policy.warmup_iters or (clock() - warm_start) / 1e9 < policy.warmup_seconds:
        runtime.infer(feeds)
        runtime.synchronize()
        warm_iters += 1
        if (clock() - warm_start) / 1e9 > policy.max_seconds:
            break

    stream = runtime.cuda_stream()
    timer = _DeviceTimer(stream, make_event) if stream is not None else None
    samples: list[float] = []
    device_samples: list[float] = []
    window_start = clock()
    elapsed = 0.0
    while not should_stop(len(samples), elapsed, policy):
        t0 = clock()
        if timer:
            timer.begin()
        runtime.infer(feeds)
        if timer:
            timer.finish()
        runtime.synchronize()
        t1 = clock()
        samples.append((t1 - t0) / 1e6)
        if timer:  # read after the timestamp: elapsed_time is a host call outside the timed region
            device_samples.append(timer.elapsed_ms())
        elapsed = (t1 - window_start) / 1e9

    result = Measurement(batch=batch, items_per_call=runtime.items_per_call(batch), samples_ms=samples,
                         window_seconds=elapsed, first_inference_ms=first_ms, warmup_iters=warm_iters,
                         timed_region=runtime.timed_region, device_samples_ms=device_samples)
    if result.stats.cv > policy.cv_warning:
        result.warnings.append(f"noisy: coefficient of variation {result.stats.cv:.0%} > {policy.cv_warning:.0%}")
    return result


def should_stop(iterations: int, elapsed_seconds: float, policy: MeasurePolicy) -> bool:
    """At least min_iters and min_seconds, or either maximum reached."""
    if iterations >= policy.max_iters or elapsed_seconds >= policy.max_seconds:
        return iterations > 0
    return iterations >= policy.min_iters and elapsed_seconds >= policy.min_seconds
