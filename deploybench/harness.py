"""The measurement harness: warm-up until settled, a timed window with a stop rule, raw samples, statistics.

The harness owns the clock. A synchronous runtime is timed call by call: ``infer`` then
``synchronize``, so asynchronous launches are never timed alone. A runtime that keeps
several requests in flight (``ConcurrentRuntime``) is driven through ``submit`` with a
completion callback: the harness timestamps each request's start and end, keeps the
requests in flight for the whole window, and derives throughput from the window's wall
time, as benchmark_app does. Either way one sample is one call on ``batch`` images.

Warm-up runs until the running median settles (with floors on count and time). The
timed window runs at least ``min_iters`` and ``min_seconds`` (10 calls and 2 s; trtexec's
are 10 and 3 s) and then until the 95 % confidence interval of the median is within
``ci_target`` of it, or a cap is reached; the interval is recorded with the result.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from deploybench.runtimes.base import ConcurrentRuntime, Runtime
from deploybench.stats import Stats, median_interval, per_image_ms, percentile, relative_half_width


@dataclass(frozen=True)
class MeasurePolicy:
    """How long to warm up and measure.

    Warm-up: at least ``warmup_iters`` and ``warmup_seconds``, then until the median of the
    last ``settle_window`` samples is within ``settle_tolerance`` of the median of the window
    before it; ``max_warmup_seconds`` bounds all of it, the first call counted as one
    ordinary call (a slow call warms up in fewer calls, at least one after the first, and the
    row says it did not settle). Timed window: at least ``min_iters`` and ``min_seconds`` (a
    floor no cap cuts short), then until the 95 % interval of the median is within
    ±``ci_target``, or ``max_iters`` / ``max_seconds``.
    """

    # trtexec's defaults: 200 ms of warm-up (--warmUp), then at least 10 calls and 3 s
    # (--iterations, --duration). The settle rule comes on top of the warm-up floor; the
    # timed floor is 10 calls and 2 s, and the window stops at 3 s unless the floor needs more.
    warmup_iters: int = 5
    warmup_seconds: float = 0.2
    settle_window: int = 5
    settle_tolerance: float = 0.02
    # Caps that keep a 24-row sweep near 2 minutes on 2 cores: a call that has not settled
    # within 2 s of warm-up (its first call counted as one call) is timed anyway (and
    # flagged; a 0.5 s call cannot show 2 x 5 settled samples in less than 5 s), and a window
    # stops at 3 s; the timed floor still holds, so a slow call gets its 10 iterations.
    max_warmup_seconds: float = 2.0
    min_iters: int = 10
    min_seconds: float = 2.0
    ci_target: float = 0.02
    max_iters: int = 100_000
    max_seconds: float = 3.0

    @classmethod
    def quick(cls) -> MeasurePolicy:
        """For smoke runs and tests: a short warm-up, a short window and a loose interval."""
        return cls(
            warmup_iters=2,
            warmup_seconds=0.0,
            settle_window=0,
            max_warmup_seconds=5.0,
            min_iters=5,
            min_seconds=0.2,
            ci_target=0.05,
            max_seconds=2.0,
        )


@dataclass
class Measurement:
    """One timed run of one runtime at one batch size, with its raw samples.

    Each sample is one call on ``batch`` images. With ``requests_in_flight`` above 1 the
    calls overlapped, so throughput comes from the window's wall time, not from latency.
    """

    batch: int
    samples_ms: list[float]
    window_seconds: float
    first_inference_ms: float
    warmup_iters: int
    timed_region: str
    warmup_seconds: float = 0.0
    warmup_settled: bool = True
    stop_reason: str = ""
    requests_in_flight: int = 1
    stats: Stats = field(init=False)
    median_ci_ms: tuple[float, float] = field(init=False)
    warnings: list[str] = field(default_factory=list)
    # GPU time of each iteration from CUDA events on the runtime's stream, when it shows one.
    device_samples_ms: list[float] = field(default_factory=list)
    device_stats: Stats | None = field(init=False, default=None)
    # Each call on the runtime's own clock (``Runtime.own_clock``), where it keeps one.
    own_samples_ms: list[float] = field(default_factory=list)
    own_stats: Stats | None = field(init=False, default=None)
    own_clock: str | None = None

    def __post_init__(self) -> None:
        self.stats = Stats.from_samples(self.samples_ms)
        self.median_ci_ms = median_interval(sorted(self.samples_ms))
        if self.device_samples_ms:
            self.device_stats = Stats.from_samples(self.device_samples_ms)
        if self.own_samples_ms:
            self.own_stats = Stats.from_samples(self.own_samples_ms)

    @property
    def items_per_call(self) -> int:
        return self.batch

    @property
    def median_ci_rel(self) -> float:
        """Half-width of the median's 95 % interval, relative to the median."""
        return relative_half_width(self.median_ci_ms, self.stats.median)

    @property
    def ms_per_image(self) -> float:
        return per_image_ms(self.stats.median, self.batch, self.requests_in_flight)

    @property
    def throughput(self) -> float:
        """Images per second over the wall time of the whole timed window."""
        return self.batch * len(self.samples_ms) / self.window_seconds

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ms_per_image=self.ms_per_image, throughput=self.throughput, median_ci_rel=self.median_ci_rel)
        return data


Clock = Callable[[], int]
EventFactory = Callable[[], Any]
# Decides from the samples so far and the seconds elapsed whether a window is over.
Done = Callable[[list[float], float], bool]


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


@dataclass
class _Window:
    samples_ms: list[float]
    device_samples_ms: list[float]
    seconds: float
    own_samples_ms: list[float] = field(default_factory=list)


class _Driver(ABC):
    """Runs calls on prepared feeds for one window and timestamps each."""

    def __init__(self, runtime: Runtime, feeds: Any, clock: Clock) -> None:
        self.runtime, self.feeds, self.clock = runtime, feeds, clock

    def first(self) -> float:
        """The first call alone (compilation for JIT runtimes), in ms."""
        start = self.clock()
        self.runtime.infer(self.feeds)
        self.runtime.synchronize()
        return (self.clock() - start) / 1e6

    @abstractmethod
    def window(self, done: Done) -> _Window:
        """Run until ``done`` says so; every sample is one call on the batch."""


class _SyncDriver(_Driver):
    """One call at a time: infer + synchronize, optionally bracketed by CUDA events."""

    def __init__(self, runtime: Runtime, feeds: Any, clock: Clock, make_event: EventFactory) -> None:
        super().__init__(runtime, feeds, clock)
        stream = runtime.cuda_stream()
        self.timer = _DeviceTimer(stream, make_event) if stream is not None else None

    def window(self, done: Done) -> _Window:
        runtime, feeds, clock, timer = self.runtime, self.feeds, self.clock, self.timer
        samples: list[float] = []
        device_samples: list[float] = []
        own_samples: list[float] = []
        own = runtime.last_call_ms if runtime.own_clock else None
        start = clock()
        elapsed = 0.0
        while not done(samples, elapsed):
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
            if own:  # likewise
                own_ms = own()
                if own_ms is not None:
                    own_samples.append(own_ms)
            elapsed = (t1 - start) / 1e9
        return _Window(samples, device_samples, elapsed, own_samples)


class _ConcurrentDriver(_Driver):
    """Keeps every request busy for the whole window, as benchmark_app does.

    A request is timestamped once a slot is idle (waiting for the slot is not its latency)
    and again in its completion callback. ``done`` is asked each time a slot frees, before
    it is refilled: a request started after that would run alone while the others drain,
    and its idle capacity would count against throughput (benchmark_app ends on a full wave
    for the same reason). The window ends when the last request in flight completes.
    """

    runtime: ConcurrentRuntime

    def window(self, done: Done) -> _Window:
        runtime, feeds, clock = self.runtime, self.feeds, self.clock
        samples: list[float] = []  # appended from the runtime's callback threads

        def completion(t0: int) -> Callable[[], None]:
            return lambda: samples.append((clock() - t0) / 1e6)

        start = clock()
        while True:
            runtime.wait_idle()
            if done(samples, (clock() - start) / 1e9):
                break
            runtime.submit(feeds, completion(clock()))
        runtime.wait_all()
        return _Window(samples, [], (clock() - start) / 1e9)


class _Settled:
    """Warm-up's end: floors met, then the running median stopped moving (or the cap).

    The cap bounds the warm-up with its first call counted as one ordinary call (what the
    first call took beyond the calls after it is compilation or first-touch cost, not
    warm-up), and is checked ahead: once one call after the first has run, the warm-up ends
    where the next call, if it is as long as the last, would cross the cap. A yolov8n batch-8
    row (first call 0.8 s, then 0.6 s) warms up for 2 s, first call included, not 3.2 s.
    Without a settle rule (``settle_window`` 0) there is nothing to fail to settle.
    """

    def __init__(self, policy: MeasurePolicy, first_seconds: float = 0.0) -> None:
        self.policy, self.first_seconds = policy, first_seconds
        self.settled = policy.settle_window <= 0

    def __call__(self, samples: list[float], elapsed: float) -> bool:
        p = self.policy
        if len(samples) >= p.warmup_iters and elapsed >= p.warmup_seconds and self._settles(samples):
            self.settled = True
            return True
        if not samples:
            return False
        call = samples[-1] / 1e3
        return min(self.first_seconds, call) + elapsed + call > p.max_warmup_seconds

    def _settles(self, samples: list[float]) -> bool:
        """Whether the median of the last window is within tolerance of the median of the one before."""
        w = self.policy.settle_window
        if w <= 0:
            return True
        if len(samples) < 2 * w:
            return False
        recent, before = sorted(samples[-w:]), sorted(samples[-2 * w : -w])
        previous = percentile(before, 50)
        return abs(percentile(recent, 50) - previous) <= self.policy.settle_tolerance * previous


class _StopRule:
    """The timed window's end: floors, then the median's interval within target, or a cap.

    The interval needs a sort, so it is checked at counts growing by 20 %: the cost stays
    linear in the number of samples.
    """

    def __init__(self, policy: MeasurePolicy) -> None:
        self.policy, self.reason = policy, ""
        self._next_check = policy.min_iters

    def __call__(self, samples: list[float], elapsed: float) -> bool:
        p, n = self.policy, len(samples)
        if n and n >= p.max_iters:
            self.reason = "iteration cap"
        elif n < p.min_iters or elapsed < p.min_seconds:  # the floor holds even past the time cap
            return False
        elif elapsed >= p.max_seconds:
            self.reason = "time cap"
        elif n >= self._next_check:
            self._next_check = max(n + 1, int(n * 1.2))
            data = sorted(samples)
            if relative_half_width(median_interval(data), percentile(data, 50)) <= p.ci_target:
                self.reason = "median interval within target"
        return bool(self.reason)


def measure(
    runtime: Runtime,
    feeds: Any,
    batch: int,
    policy: MeasurePolicy = MeasurePolicy(),
    clock: Clock = time.perf_counter_ns,
    make_event: EventFactory = cuda_event,
    on_phase: Callable[[str], None] = lambda phase: None,
) -> Measurement:
    """Warm up until settled, then time calls until the stop rule holds.

    Host wall time per call is always recorded; where the runtime exposes its CUDA stream,
    CUDA events on that stream also give the GPU time of each call. ``on_phase`` hears
    ``warm-up`` and ``timed`` as each begins (the progress display).
    """
    in_flight = runtime.requests_in_flight() if isinstance(runtime, ConcurrentRuntime) else 1
    driver: _Driver = (
        _ConcurrentDriver(runtime, feeds, clock) if in_flight > 1 else _SyncDriver(runtime, feeds, clock, make_event)
    )
    on_phase("warm-up")
    first_ms = driver.first()
    settled = _Settled(policy, first_ms / 1e3)
    warm = driver.window(settled)
    on_phase("timed")
    stop = _StopRule(policy)
    timed = driver.window(stop)
    result = Measurement(
        batch=batch,
        samples_ms=timed.samples_ms,
        window_seconds=timed.seconds,
        first_inference_ms=first_ms,
        warmup_iters=len(warm.samples_ms),
        warmup_seconds=warm.seconds,
        timed_region=runtime.timed_region,
        warmup_settled=settled.settled,
        stop_reason=stop.reason,
        requests_in_flight=in_flight,
        device_samples_ms=timed.device_samples_ms,
        own_samples_ms=timed.own_samples_ms,
        own_clock=runtime.own_clock if timed.own_samples_ms else None,
    )
    if result.median_ci_rel > policy.ci_target:
        low, high = result.median_ci_ms
        result.warnings.append(
            f"noisy: the median is known only to ±{result.median_ci_rel:.1%} (95 % interval "
            f"{low:.3f}–{high:.3f} ms) after {result.stats.n} calls; stopped at the {stop.reason}"
        )
    if not settled.settled:
        result.warnings.append(f"warm-up did not settle within {policy.max_warmup_seconds:.0f} s")
    return result
