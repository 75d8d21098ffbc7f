"""The harness: statistics against hand-computed values, throughput arithmetic, the stop rule."""

from __future__ import annotations

import heapq
import itertools
import math

import numpy as np
import pytest

from deploybench.harness import MeasurePolicy, Stats, measure, median_interval, percentile
from deploybench.runtimes.base import ConcurrentRuntime, Runtime


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


def test_median_interval_uses_order_statistics() -> None:
    assert median_interval([float(v) for v in range(10)]) == (0.0, 9.0)  # 10 samples: the whole range
    # n = 100: ranks floor(50 - 9.8) = 40 and ceil(51 + 9.8) = 61 (1-based)
    assert median_interval([float(v) for v in range(100)]) == (39.0, 60.0)


class FakeClock:
    """Each call returns the current time; each infer advances it by a scripted amount."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class ScriptedRuntime(Runtime):
    """Advances the fake clock by the next scripted cost (ns) per infer; counts calls."""

    name, formats = "scripted", ("pytorch",)

    def __init__(self, clock: FakeClock, costs_ns) -> None:
        super().__init__()
        self.clock, self.calls, self.syncs = clock, 0, 0
        self.costs = iter(costs_ns) if not isinstance(costs_ns, int) else itertools.repeat(costs_ns)

    def _load(self, artifact): ...
    def prepare(self, batch):
        return batch

    def outputs(self):
        return []

    def infer(self, feeds) -> None:
        self.calls += 1
        self.clock.now += next(self.costs)

    def synchronize(self) -> None:
        self.syncs += 1


NO_WARMUP = {"warmup_iters": 0, "warmup_seconds": 0.0, "settle_window": 0}


class TimedByItselfRuntime(ScriptedRuntime):
    """Keeps its own clock of each call, as OpenVINO's request does: the call's cost less host overhead."""

    own_clock = "the call's own clock"

    def __init__(self, clock: FakeClock, costs_ns, overhead_ns: int) -> None:
        super().__init__(clock, costs_ns)
        self.overhead_ns, self.own_reads, self.last_own_ms = overhead_ns, 0, 0.0

    def infer(self, feeds) -> None:
        before = self.clock.now
        super().infer(feeds)
        self.last_own_ms = (self.clock.now - before - self.overhead_ns) / 1e6

    def last_call_ms(self) -> float | None:
        self.own_reads += 1
        return self.last_own_ms


def test_the_runtimes_own_clock_is_kept_beside_the_host_time() -> None:
    clock = FakeClock()
    runtime = TimedByItselfRuntime(clock, itertools.cycle([2_000_000, 4_000_000]), overhead_ns=100_000)
    policy = MeasurePolicy(**NO_WARMUP, min_iters=10, min_seconds=0.0, max_iters=10)
    m = measure(runtime, None, batch=1, policy=policy, clock=clock)
    assert m.own_clock == "the call's own clock" and len(m.own_samples_ms) == len(m.samples_ms) == 10
    # Read once per call, after its host timestamp: the host samples stay the calls' full cost.
    assert runtime.own_reads == runtime.calls - 1  # every call but the first, which is timed alone
    assert sorted(set(m.samples_ms)) == [2.0, 4.0] and sorted(set(m.own_samples_ms)) == [1.9, 3.9]
    assert m.own_stats is not None and m.own_stats.median == pytest.approx(m.stats.median - 0.1)


def test_a_runtime_without_a_clock_of_its_own_has_no_own_samples() -> None:
    clock = FakeClock()
    m = measure(ScriptedRuntime(clock, 2_000_000), None, 1, MeasurePolicy(**NO_WARMUP, max_iters=10), clock=clock)
    assert m.own_samples_ms == [] and m.own_stats is None and m.own_clock is None


def test_measure_with_a_fake_clock() -> None:
    clock = FakeClock()
    runtime = ScriptedRuntime(clock, 2_000_000)  # 2 ms per call
    policy = MeasurePolicy(warmup_iters=3, warmup_seconds=0.0, settle_window=0, min_iters=10, min_seconds=0.05)
    m = measure(runtime, None, batch=4, policy=policy, clock=clock)
    assert m.first_inference_ms == pytest.approx(2.0)
    assert m.warmup_iters == 3
    assert len(m.samples_ms) == 25  # 0.05 s / 2 ms: the time floor dominates, then the interval is 0
    assert runtime.calls == 1 + 3 + 25 and runtime.syncs == runtime.calls
    assert m.stats.median == pytest.approx(2.0) and m.median_ci_ms == (pytest.approx(2.0), pytest.approx(2.0))
    assert m.ms_per_image == pytest.approx(0.5)
    assert m.throughput == pytest.approx(4 * 25 / 0.05)  # images / window wall time
    assert m.stop_reason == "median interval within target" and m.warnings == []


def test_stop_rule_floors_are_ten_calls_and_two_seconds() -> None:
    fast = measure(ScriptedRuntime(clock := FakeClock(), 100_000), None, 1, MeasurePolicy(**NO_WARMUP), clock=clock)
    assert len(fast.samples_ms) == 20_000  # 2 s of 0.1 ms calls, although the interval was tight after 10
    slow = measure(ScriptedRuntime(clock := FakeClock(), 500_000_000), None, 1, MeasurePolicy(**NO_WARMUP), clock=clock)
    assert len(slow.samples_ms) == 10  # 10 calls of 0.5 s: past 2 s, and identical samples


def test_stop_rule_runs_on_until_the_median_is_known_to_two_percent() -> None:
    rng = np.random.default_rng(3)
    costs = rng.uniform(8e6, 12e6, size=200_000).astype(int).tolist()  # 10 ms ± 20 %, uniform
    m = measure(ScriptedRuntime(clock := FakeClock(), costs), None, 1, MeasurePolicy(**NO_WARMUP), clock=clock)
    assert m.stop_reason == "median interval within target"
    assert m.median_ci_rel <= 0.02 and m.warnings == []
    assert len(m.samples_ms) > 250  # past the floors (about 200 calls in 2 s)
    # It went on because of the interval: at the floors (the first 2 s) it was wider than ±2 %.
    at_floor = int(np.searchsorted(np.cumsum(m.samples_ms), 2000.0)) + 1
    early = sorted(m.samples_ms[:at_floor])
    low, high = median_interval(early)
    assert (high - low) / 2 / percentile(early, 50) > 0.02


def test_noisy_rows_stop_at_the_time_cap_and_say_how_well_the_median_is_known() -> None:
    costs = itertools.cycle([1_000_000, 9_000_000])  # the median jumps between 1 and 9 ms
    policy = MeasurePolicy(**NO_WARMUP, max_seconds=5.0)
    m = measure(ScriptedRuntime(clock := FakeClock(), costs), None, 1, policy, clock=clock)
    assert m.stop_reason == "time cap" and m.window_seconds == pytest.approx(5.0, abs=0.01)
    assert m.median_ci_rel > 0.02
    assert m.warnings and m.warnings[0].startswith("noisy: the median is known only to ±")


def test_the_time_cap_never_cuts_the_ten_call_floor_short() -> None:
    # Calls of 0.8 s with a 3 s cap: trtexec's floor of 10 calls still holds (8 s), then the cap.
    costs = itertools.cycle([700_000_000, 900_000_000])
    policy = MeasurePolicy(**NO_WARMUP, max_seconds=3.0)
    m = measure(ScriptedRuntime(clock := FakeClock(), costs), None, 1, policy, clock=clock)
    assert len(m.samples_ms) == 10 and m.stop_reason == "time cap"


def test_warm_up_runs_until_the_running_median_settles() -> None:
    # A cold start: 20 calls slowing from 200 ms down to 105 ms, then a steady 100 ms.
    cold = [int((200 - 5 * i) * 1e6) for i in range(20)]
    runtime = ScriptedRuntime(clock := FakeClock(), itertools.chain([300_000_000], cold, itertools.repeat(100_000_000)))
    policy = MeasurePolicy(
        warmup_iters=5, warmup_seconds=0.5, settle_window=5, max_warmup_seconds=20.0, min_seconds=2.0
    )
    m = measure(runtime, None, 1, policy, clock=clock)
    assert m.warmup_iters >= 20 and m.warmup_settled  # a fixed 5 calls or 0.5 s would have stopped at 5
    assert m.stats.max == pytest.approx(100.0)  # no cold sample reached the timed window


def test_warm_up_that_never_settles_stops_at_its_cap_with_a_warning() -> None:
    runtime = ScriptedRuntime(clock := FakeClock(), (int(1e6 * 1.1**i) for i in range(10_000)))
    policy = MeasurePolicy(
        warmup_iters=2,
        warmup_seconds=0.0,
        settle_window=3,
        max_warmup_seconds=1.0,
        min_iters=3,
        min_seconds=0.0,
        max_seconds=5.0,
    )
    m = measure(runtime, None, 1, policy, clock=clock)
    assert not m.warmup_settled
    assert any("warm-up did not settle" in w for w in m.warnings)


def test_the_warm_up_cap_counts_the_first_call_as_one_call_and_stops_before_the_cap() -> None:
    # A 0.8 s first call, then 0.6 s calls: the first counts as one 0.6 s call, so two calls
    # after it (1.8 s in all) fit a 2 s cap and a third would end at 2.4 s. The old rule
    # warmed up 2 s after the first call and one call past it: 4 calls.
    costs = itertools.chain([800_000_000], itertools.repeat(600_000_000))
    m = measure(
        ScriptedRuntime(clock := FakeClock(), costs), None, 8, MeasurePolicy(max_warmup_seconds=2.0), clock=clock
    )
    assert m.first_inference_ms == pytest.approx(800.0)
    assert m.warmup_iters == 2 and m.warmup_seconds == pytest.approx(1.2)
    assert not m.warmup_settled and len(m.samples_ms) == 10


@pytest.mark.parametrize("first_ns", [1_900_000_000, 2_100_000_000, 5_000_000_000])
def test_a_long_first_call_leaves_the_cap_to_the_calls_after_it(first_ns: int) -> None:
    # A compile of about the cap or more, then 0.05 s calls: the warm-up settles either way.
    costs = itertools.chain([first_ns], itertools.repeat(50_000_000))
    m = measure(ScriptedRuntime(clock := FakeClock(), costs), None, 1, MeasurePolicy(), clock=clock)
    assert m.warmup_settled and m.warmup_iters == 10  # two settle windows of 5
    assert not any("warm-up did not settle" in w for w in m.warnings)


def test_a_warm_up_that_settles_on_the_last_call_within_the_cap_is_settled() -> None:
    # 0.18 s calls settle after 10 (1.8 s); the next would cross the 2 s cap, but they settled.
    costs = itertools.chain([100_000_000], itertools.repeat(180_000_000))
    m = measure(ScriptedRuntime(clock := FakeClock(), costs), None, 1, MeasurePolicy(), clock=clock)
    assert m.warmup_settled and m.warmup_iters == 10 and m.warnings == []


def test_without_a_settle_rule_a_capped_warm_up_is_not_flagged() -> None:
    # The quick policy has no settle rule: nothing can fail to settle, whatever the first call took.
    costs = itertools.chain([4_500_000_000], itertools.repeat(600_000_000))
    m = measure(ScriptedRuntime(clock := FakeClock(), costs), None, 1, MeasurePolicy.quick(), clock=clock)
    assert m.warmup_iters == 2 and m.warmup_settled
    assert not any("warm-up did not settle" in w for w in m.warnings)


class SimulatedQueue(ConcurrentRuntime):
    """``requests`` slots; each request takes the next scripted cost. Waiting advances the fake
    clock to the earliest completion and calls its callback, as an AsyncInferQueue would."""

    name, formats = "simulated-queue", ("pytorch",)

    def __init__(self, clock: FakeClock, requests: int, costs_ns) -> None:
        super().__init__()
        self.clock, self.requests, self.costs = clock, requests, itertools.cycle(costs_ns)
        self.pending: list = []
        self.submitted = self.completed = 0
        self.busy_at_submit: list[int] = []

    def _load(self, artifact): ...
    def prepare(self, batch):
        return batch

    def outputs(self):
        return []

    def infer(self, feeds) -> None:  # the first inference: one request, synchronously
        self.clock.now += next(self.costs)

    def requests_in_flight(self) -> int:
        return self.requests

    def _complete_next(self) -> None:
        finish, _, done = heapq.heappop(self.pending)
        self.clock.now = max(self.clock.now, finish)
        self.completed += 1
        done()

    def wait_idle(self) -> None:
        while len(self.pending) >= self.requests:
            self._complete_next()

    def submit(self, feeds, done) -> None:
        self.busy_at_submit.append(len(self.pending))
        self.submitted += 1
        heapq.heappush(self.pending, (self.clock.now + next(self.costs), self.submitted, done))

    def wait_all(self) -> None:
        while self.pending:
            self._complete_next()


def test_concurrent_requests_stay_in_flight_and_p50_is_one_request() -> None:
    clock = FakeClock()
    ms = 1_000_000
    runtime = SimulatedQueue(clock, requests=4, costs_ns=[10 * ms, 10 * ms, 30 * ms])
    policy = MeasurePolicy(warmup_iters=8, warmup_seconds=0.0, settle_window=0, min_seconds=1.0, ci_target=1.0)
    m = measure(runtime, None, batch=2, policy=policy, clock=clock)
    assert m.requests_in_flight == 4
    # p50 is the latency of one request on `batch` images, not of a wave of four.
    assert m.stats.median == pytest.approx(10.0) and m.stats.max == pytest.approx(30.0)
    # One image's cost: four calls of 2 images overlap, so the median 10 ms call costs 10 / 8 ms an
    # image (the window's 1000 / 480 ms is a mean, pulled up by the 30 ms calls); median / batch,
    # 5 ms, would rank the row four times too slow.
    assert m.ms_per_image == pytest.approx(1.25) and m.items_per_call == 2
    # Throughput over the window: 4 requests busy, 50/3 ms each on average -> 240 requests/s of 2 images.
    # Waves (start 4, wait for all) would give 4 per 30 ms: 267 images/s instead of 480.
    assert m.throughput == pytest.approx(480, rel=0.03)
    # Every slot was refilled as soon as it was free: only the fills at the start of the warm-up and
    # of the timed window found fewer than 3 other requests busy.
    assert sorted(runtime.busy_at_submit)[:8] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert runtime.completed == runtime.submitted  # the window ends when the last request in flight is done


def test_concurrent_window_starts_no_request_after_it_is_over() -> None:
    # Two requests of 100 ms in lockstep. Had the window refilled the slot that freed first
    # and only then asked whether it was over, that request would run alone for 100 ms at the
    # end: 21 requests in 1.1 s, with one core idle for the last 0.1 s.
    clock = FakeClock()
    runtime = SimulatedQueue(clock, requests=2, costs_ns=[100_000_000])
    policy = MeasurePolicy(
        warmup_iters=2, warmup_seconds=0.0, settle_window=0, min_iters=10, min_seconds=1.0, ci_target=1.0
    )
    m = measure(runtime, None, batch=4, policy=policy, clock=clock)
    assert m.window_seconds == pytest.approx(1.0)
    assert len(m.samples_ms) == 20
    assert m.throughput == pytest.approx(4 * 2 / 0.1)


class FakeEvent:
    """Stands in for torch.cuda.Event: records the fake clock on ``record``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.at, self.streams = clock, None, []

    def record(self, stream) -> None:
        self.streams.append(stream)
        self.at = self.clock.now

    def elapsed_time(self, end: FakeEvent) -> float:
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

    m = measure(
        GpuLike(clock, 3_000_000), None, batch=1, policy=MeasurePolicy.quick(), clock=clock, make_event=make_event
    )
    assert m.stats.median == pytest.approx(4.0)  # host: launch + wait
    assert m.device_stats is not None and m.device_stats.median == pytest.approx(3.0)  # GPU: the work alone
    assert len(m.device_samples_ms) == len(m.samples_ms)
    assert {s for e in events for s in e.streams} == {"stream-7"}


def test_cpu_runtimes_have_no_device_samples() -> None:
    clock = FakeClock()
    m = measure(ScriptedRuntime(clock, 1_000_000), None, batch=1, policy=MeasurePolicy.quick(), clock=clock)
    assert m.device_samples_ms == [] and m.device_stats is None
