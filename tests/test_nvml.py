"""NVML sampling around the timed window, against a fake NVML module; and its hook in the cell."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pytest

from deploybench.nvml import NvmlSample, NvmlSampler, reason_names, summarize, visible_device_index


class FakeNvml:
    """The parts of pynvml the sampler calls; each reading comes from a script of values."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def __init__(
        self,
        clocks=(1980,),
        power_mw=(300_000,),
        reasons=(0,),
        energy_per_read_mj=500,
        energy_supported=True,
        name=b"NVIDIA H100 80GB HBM3",
        fail_init=False,
    ) -> None:
        self.clocks, self.power, self.reasons = list(clocks), list(power_mw), list(reasons)
        self.energy_per_read, self.energy_supported, self.name = energy_per_read_mj, energy_supported, name
        self.fail_init = fail_init
        self.energy = 1_000_000
        self.reads = 0
        self.shutdown = False
        self.handles: list = []

    def _next(self, values: list):
        return values[min(self.reads, len(values) - 1)]

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shutdown = True

    def nvmlDeviceGetHandleByIndex(self, index: int):
        self.handles.append(("index", index))
        return "handle"

    def nvmlDeviceGetHandleByUUID(self, uuid: str):
        self.handles.append(("uuid", uuid))
        return "handle"

    def nvmlDeviceGetName(self, handle):
        return self.name

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        return 1980

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return self._next(self.clocks) if kind == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetTemperature(self, handle, kind):
        return 50 + self.reads

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._next(self.power)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=97, memory=40)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self._next(self.reasons)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        # The last call of one reading: advance the script and the counter here.
        if not self.energy_supported:
            raise RuntimeError("Not Supported")
        self.reads += 1
        self.energy += self.energy_per_read
        return self.energy


def sample(t: float, **fields) -> NvmlSample:
    return NvmlSample(t=t, **fields)


def test_reason_bits_are_named() -> None:
    assert reason_names(0) == []
    assert reason_names(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]


def test_window_takes_the_last_seconds_only_and_energy_per_image() -> None:
    # Warm-up at 1000 MHz and 100 W, then a 2 s timed window at 1980 MHz and 300 W.
    samples = [
        sample(0.0, sm_clock_mhz=1000, power_w=100.0, energy_mj=0),
        sample(1.0, sm_clock_mhz=1000, power_w=100.0, energy_mj=100_000),
        sample(2.0, sm_clock_mhz=1980, power_w=300.0, energy_mj=200_000),
        sample(3.0, sm_clock_mhz=1980, power_w=300.0, energy_mj=500_000),
        sample(4.0, sm_clock_mhz=1980, power_w=300.0, energy_mj=800_000),
    ]
    window = summarize(samples, "NVIDIA H100", window_seconds=2.0, images=1000)
    assert window is not None
    assert window.sm_clock_min_mhz == 1980 and window.power_mean_w == 300.0  # warm-up readings left out
    assert window.energy_j == pytest.approx(600.0)  # 800 J - 200 J counter readings, in joules
    assert window.energy_per_image_mj == pytest.approx(600.0)  # 600,000 mJ over 1000 images
    assert window.warnings() == []


def test_energy_is_interpolated_between_readings() -> None:
    samples = [sample(0.0, energy_mj=0), sample(1.0, energy_mj=1000), sample(2.0, energy_mj=2000)]
    window = summarize(samples, "gpu", window_seconds=1.5, images=10)
    assert window.energy_j == pytest.approx(1.5)  # from t=0.5 (500 mJ) to t=2.0 (2000 mJ)


def test_no_energy_counter_means_no_energy_figures() -> None:
    window = summarize([sample(0.0, power_w=50.0), sample(1.0, power_w=60.0)], "T4", 1.0, 10)
    assert window.energy_j is None and window.energy_per_image_mj is None and window.power_mean_w == 55.0


@pytest.mark.parametrize(
    "mask, clocks, expected",
    [
        (0x4, (1980, 1980), "throttled during the timed window (sw_power_cap)"),
        (0x40 | 0x1, (1980, 1980), "hw_thermal_slowdown"),
        (0x0, (1980, 1500), "clocked down during the timed window: SM clock 1500 to 1980 MHz"),
    ],
)
def test_throttling_and_clock_drops_warn(mask: int, clocks: tuple[int, int], expected: str) -> None:
    samples = [sample(0.0, sm_clock_mhz=clocks[0], throttle_mask=mask), sample(1.0, sm_clock_mhz=clocks[1])]
    warnings = summarize(samples, "gpu", 1.0, 1).warnings()
    assert len(warnings) == 1 and expected in warnings[0]


def test_idle_and_benign_reasons_do_not_warn() -> None:
    samples = [sample(0.0, sm_clock_mhz=1980, throttle_mask=0x1 | 0x2), sample(1.0, sm_clock_mhz=1950)]
    window = summarize(samples, "gpu", 1.0, 1)
    assert window.throttle_reasons == ["gpu_idle", "applications_clocks_setting"] and window.warnings() == []


def test_sampler_reads_the_fake_gpu_around_the_window() -> None:
    fake = FakeNvml(clocks=(1980, 1980, 1400), power_mw=(310_000,), reasons=(0, 0x4), energy_per_read_mj=250)
    with NvmlSampler(interval_s=0.01, nvml=fake) as gpu:
        time.sleep(0.1)
    assert fake.shutdown and len(gpu.samples) >= 3
    window = gpu.window(seconds=0.1, images=100)
    assert window.device == "NVIDIA H100 80GB HBM3" and window.sm_clock_board_max_mhz == 1980
    assert window.power_mean_w == 310.0 and window.gpu_util_mean_pct == 97.0
    assert window.energy_j is not None and window.energy_j > 0
    assert window.energy_per_image_mj == pytest.approx(window.energy_j * 1000 / 100)
    assert any("sw_power_cap" in w for w in window.warnings())
    assert any("clocked down" in w for w in window.warnings())


class OlderFakeNvml(FakeNvml):
    """An nvidia-ml-py from before the "clocks event reasons" name."""

    nvmlDeviceGetCurrentClocksEventReasons = None

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
        return 0x8


def test_sampler_uses_the_older_throttle_reasons_name() -> None:
    with NvmlSampler(interval_s=0.01, nvml=OlderFakeNvml()) as gpu:
        pass
    assert gpu.window(0.01, 1).throttle_reasons == ["hw_slowdown"]


def test_sampler_is_a_no_op_without_nvml_or_when_disabled() -> None:
    with NvmlSampler(nvml=FakeNvml(fail_init=True)) as missing:
        pass
    assert missing.samples == [] and missing.window(1.0, 1) is None
    fake = FakeNvml()
    with NvmlSampler(enabled=False, nvml=fake) as disabled:
        pass
    assert disabled.samples == [] and fake.reads == 0


def test_sampler_without_energy_counter_still_reports_power() -> None:
    with NvmlSampler(interval_s=0.01, nvml=FakeNvml(energy_supported=False)) as gpu:
        time.sleep(0.03)
    window = gpu.window(0.03, 10)
    assert window.energy_j is None and window.power_mean_w == 300.0


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, ("index", 0)),
        ({"CUDA_VISIBLE_DEVICES": "3,1"}, ("index", 3)),
        ({"CUDA_VISIBLE_DEVICES": "GPU-8a1c,GPU-22"}, ("uuid", "GPU-8a1c")),
    ],
)
def test_the_sampled_gpu_is_the_one_cuda_computes_on(env: dict, expected: tuple) -> None:
    assert visible_device_index(env) == expected


def test_cell_records_the_window_and_its_warnings(monkeypatch: pytest.MonkeyPatch, tiny) -> None:
    """The hook in run_cell: a cell with sample=("nvml",) carries the window and the throttle warning."""
    from deploybench.cell import Cell, run_cell
    from deploybench.harness import MeasurePolicy

    fake = FakeNvml(reasons=(0x20,))
    monkeypatch.setitem(sys.modules, "pynvml", fake)  # what the sampler imports in the worker
    policy = MeasurePolicy(warmup_iters=1, warmup_seconds=0.0, min_iters=3, min_seconds=0.05)
    cell = Cell(
        model=tiny.ref,
        model_name=tiny.name,
        task=tiny.task,
        format="pytorch",
        runtime="torch",
        batch=1,
        policy=policy,
        sample=("rss", "nvml"),
    )
    row = run_cell(cell)
    assert row.status == "ok", row.message
    assert row.runtime_info["nvml"]["device"] == "NVIDIA H100 80GB HBM3"
    assert row.runtime_info["nvml"]["energy_per_image_mj"] > 0
    assert any("sw_thermal_slowdown" in w for w in row.warnings)
    without = run_cell(Cell(**{**cell.__dict__, "sample": ("rss",)}))
    assert "nvml" not in without.runtime_info
