"""The harness: statistics against hand-computed values, throughput arithmetic, the stop rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deploybench.harness import MeasurePolicy, Stats, measure, percentile, should_stop
from deploybench.runtimes.base import Runtime


def test_stats_match_hand_computed_values() -> None:
    samples = [4.0, 1.0, 3.0, 2.0, 10.0]
    s = Stats.from_samples(samples)
    assert (s.n, s.min, s.max, s.median) == (5, 1.0, 10.0, 3.0)
    assert s.mean == pytest.approx(4.0)
    # sample std: deviations -3,-2,-1,0,6 -> squares 9+4+1+0+36 = 50 -> sqrt(50/4)
    assert s.std == pytest.approx(math.sqrt(12.5))
    assert s.cv == pytest.approx(math.sqrt(12.5) / 4.0)
    # p90 by linear interpolation on sorted [1,2,3,4,10]: rank 3.6 -> 4 + 0.6*(10-4)
    assert s.p90 == pytest.approx(7.6)
    assert s.p99 == pytest.approx(4 + 0.96 * 6)


def test_percentile_agrees_with_numpy() -> None:
    data = sorted(np.random.default_rng(0).exponential(size=101).tolist())
    for q in (0, 37, 50, 90, 95, 99, 100):
        assert percentile(data, q) == pytest.approx(np.percentile(data, q))


def test_single_sample_has_zero_spread() -> None:
    s = Stats.from_samples([2.5])
    assert s.std == 0.0 and s.median == s.p99 == 2.5


@pytest.mark.parametrize("iters, seconds, expected", [
    (49, 10.0, False),  # enough time, too few iterations
    (50, 2.9, False),   # enough iterations, too little time
    (50, 3.0, True),
    (5, 60.0, True),    # the time cap ends it
    (100_000, 0.1, True),  # the iteration cap ends it
    (0, 61.0, False),   # never stop with no sample
])
def test_stop_rule(iters: int, seconds: float, expected: bool) -> None:
    assert should_stop(iters, seconds, MeasurePolicy()) is expected


class FakeClock:
    """Each call returns the current time; each infer advances it by a scripted amount."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class ScriptedRuntime(Runtime):
    """Advances the fake clock by ``cost_ns`` per infer; counts calls."""

    name, formats = "scripted", ("pytorch",)

    def __init__(self, clock: FakeClock, cost_ns: int, parallel: int = 1) -> None:
        super().__init__()
        self.clock, self.cost_ns, self.parallel, self.calls, self.syncs = clock, cost_ns, parallel, 0, 0

    def _load(self, artifact): ...
    def prepare(self, batch): return batch
    def outputs(self): return []

    def infer(self, feeds) -> None:
        self.calls += 1
        self.clock.now += self.cost_ns

    def synchronize(self) -> None:
        self.syncs += 1

    def items_per_call(self, batch: int) -> int:
        return batch * self.parallel


def test_measure_with_a_fake_clock() -> None:
    clock = FakeClock()
    runtime = ScriptedRuntime(clock, cost_ns=2_000_000)  # 2 ms per call
    policy = MeasurePolicy(warmup_iters=3, warmup_seconds=0.0, min_iters=10, min_seconds=0.05)
    m = measure(runtime, None, batch=4, policy=policy, clock=clock)
    assert m.first_inference_ms == pytest.approx(2.0)
    assert m.warmup_iters == 3
    assert len(m.samples_ms) == 25  # 0.05 s / 2 ms: the time minimum dominates
    assert runtime.calls == 1 + 3 + 25 and runtime.syncs == runtime.calls
    assert m.stats.median == pytest.approx(2.0)
    assert m.ms_per_image == pytest.approx(0.5)
    assert m.throughput == pytest.approx(4 * 25 / 0.05)  # images / window wall time
    assert m.warnings == []


def test_throughput_counts_parallel_requests() -> None:
    clock = FakeClock()
    runtime = ScriptedRuntime(clock, cost_ns=10_000_000, parallel=4)  # 4 requests of batch 2 per call
    m = measure(runtime, None, batch=2, policy=MeasurePolicy.quick(), clock=clock)
    assert m.items_per_call == 8
    assert m.ms_per_image == pytest.approx(10.0 / 8)
    assert m.throughput == pytest.approx(8 / 0.010)


def test_noisy_rows_are_flagged() -> None:
    clock = FakeClock()
    costs = iter([1_000_000] * 6 + [1_000_000, 9_000_000] * 50)

    class Noisy(ScriptedRuntime):
        def infer(self, feeds) -> None:
            self.clock.now += next(costs)

    m = measure(Noisy(clock, 0), None, batch=1, policy=MeasurePolicy(warmup_iters=5, warmup_seconds=0,
                                                                       min_iters=20, min_seconds=0), clock=clock)
    assert m.stats.cv > 0.5
    assert m.warnings and "noisy" in m.warnings[0]


class FakeEvent:
    """Stands in for torch.cuda.Event: records the fake clock on ``record``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.at, self.streams = clock, None, []

    def record(self, stream) -> None:
        self.streams.append(stream)
        self.at = self.clock.now

    def elapsed_time(self, end: "FakeEvent") -> float:
        return (end.at - self.at) / 1e6


def test_device_time_comes_from_events_on_the_runtimes_stream() -> None:
    clock = FakeClock()
    events: list[FakeEvent] = []

    class GpuLike(ScriptedRuntime):
        def cuda_stream(self):
            return "stream-7"

        def synchronize(self) -> None:  # the host waits 1 ms longer than the GPU works
            super().synchronize()
            self.clock.now += 1_000_000

    def make_event() -> FakeEvent:
        events.append(FakeEvent(clock))
        return events[-1]

    m = measure(GpuLike(clock, cost_ns=3_000_000), None, batch=1, policy=MeasurePolicy.quick(), clock=clock,
                make_event=make_event)
    assert m.stats.median == pytest.approx(4.0)  # host: launch + wait
    assert m.device_stats is not None and m.device_stats.median == pytest.approx(3.0)  # GPU: the work alone
    assert len(m.device_samples_ms) == len(m.samples_ms)
    assert {s for e in events for s in e.streams} == {"stream-7"}


def test_cpu_runtimes_have_no_device_samples() -> None:
    clock = FakeClock()
    m = measure(ScriptedRuntime(clock, 1_000_000), None, batch=1, policy=MeasurePolicy.quick(), clock=clock)
    assert m.device_samples_ms == [] and m.device_stats is None
