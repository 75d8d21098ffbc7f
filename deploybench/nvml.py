"""Clocks, temperature, power, throttle reasons and energy of an NVIDIA GPU around a timed window (NVML).

:class:`NvmlSampler` reads NVML on a background thread while the harness measures, every
``interval_s`` and once more at each end, and keeps timestamped samples. The cell then asks
for the summary of the *timed window* alone (its length is known once ``measure`` returns,
and it ends where sampling ended), so warm-up does not count:

* SM clock (mean, min, max) against the board's maximum SM clock, temperature, power;
* throttle reasons seen in the window (NVML's clocks-event reasons bitmask), and a warning
  when the GPU was held back by power or temperature, or its SM clock fell during the window;
* energy per image from ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver
  loaded; Volta and later), interpolated to the window's start and end.

``pynvml`` comes from the ``nvidia-ml-py`` package and is imported lazily: without it, a
driver or a GPU the sampler does nothing. Jetson boards have no NVML; tegrastats covers them.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from statistics import mean
from typing import Any

# Clocks-event ("throttle") reason bits, from nvml.h (nvmlClocksEventReason*; the values are ABI).
THROTTLE_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# Reasons that mean the GPU ran slower than it could have for this work.
LIMITING_REASONS = frozenset(
    {"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}
)
CLOCK_DROP = 0.10  # an SM clock more than 10 % under the window's highest counts as clocked down


def reason_names(mask: int) -> list[str]:
    """The names of the bits set in an NVML clocks-event reasons mask."""
    return [name for bit, name in THROTTLE_REASONS.items() if mask & bit]


@dataclass(frozen=True)
class NvmlSample:
    """One reading; fields the GPU does not report stay None."""

    t: float  # time.perf_counter() seconds
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    throttle_mask: int = 0
    energy_mj: int | None = None  # the board's cumulative energy counter
    gpu_util_pct: int | None = None


@dataclass(frozen=True)
class NvmlWindow:
    """What the GPU did during one timed window."""

    device: str
    samples: int
    seconds: float
    sm_clock_mean_mhz: float | None
    sm_clock_min_mhz: int | None
    sm_clock_max_mhz: int | None
    sm_clock_board_max_mhz: int | None
    temperature_max_c: int | None
    power_mean_w: float | None
    power_max_w: float | None
    gpu_util_mean_pct: float | None
    throttle_reasons: list[str] = field(default_factory=list)
    energy_j: float | None = None
    energy_per_image_mj: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def warnings(self) -> list[str]:
        """Why the numbers of this window may be below what the GPU can do."""
        found = []
        limiting = [r for r in self.throttle_reasons if r in LIMITING_REASONS]
        if limiting:
            found.append(f"GPU throttled during the timed window ({', '.join(limiting)})")
        if (
            self.sm_clock_min_mhz
            and self.sm_clock_max_mhz
            and self.sm_clock_min_mhz < (1 - CLOCK_DROP) * self.sm_clock_max_mhz
        ):
            found.append(
                f"GPU clocked down during the timed window: SM clock {self.sm_clock_min_mhz} to "
                f"{self.sm_clock_max_mhz} MHz"
            )
        return found


def _interpolate_energy(samples: list[NvmlSample], at: float) -> float | None:
    """The energy counter at time ``at``: linear between the readings around it, clamped at the ends."""
    readings = [(s.t, float(s.energy_mj)) for s in samples if s.energy_mj is not None]
    if not readings:
        return None
    if at <= readings[0][0]:
        return readings[0][1]
    for (t0, e0), (t1, e1) in zip(readings, readings[1:]):
        if at <= t1:
            return e0 + (e1 - e0) * (at - t0) / (t1 - t0)
    return readings[-1][1]


def summarize(
    samples: list[NvmlSample], device: str, window_seconds: float, images: int, board_max_clock_mhz: int | None = None
) -> NvmlWindow | None:
    """The last ``window_seconds`` of ``samples`` (the timed window ends where sampling ended)."""
    if not samples:
        return None
    end = samples[-1].t
    start = end - window_seconds
    # The reading just before the window started describes its first moments too.
    before = [s for s in samples if s.t <= start]
    inside = ([before[-1]] if before else []) + [s for s in samples if s.t > start]
    clocks = [s.sm_clock_mhz for s in inside if s.sm_clock_mhz]
    power = [s.power_w for s in inside if s.power_w is not None]
    temps = [s.temperature_c for s in inside if s.temperature_c is not None]
    utils = [s.gpu_util_pct for s in inside if s.gpu_util_pct is not None]
    mask = 0
    for s in inside:
        mask |= s.throttle_mask
    energy_j = per_image = None
    e_start, e_end = _interpolate_energy(samples, max(start, samples[0].t)), _interpolate_energy(samples, end)
    if e_start is not None and e_end is not None and e_end > e_start:
        energy_j = (e_end - e_start) / 1000
        per_image = (e_end - e_start) / images if images else None
    return NvmlWindow(
        device=device,
        samples=len(inside),
        seconds=window_seconds,
        sm_clock_mean_mhz=round(mean(clocks), 1) if clocks else None,
        sm_clock_min_mhz=min(clocks, default=None),
        sm_clock_max_mhz=max(clocks, default=None),
        sm_clock_board_max_mhz=board_max_clock_mhz,
        temperature_max_c=max(temps, default=None),
        power_mean_w=round(mean(power), 2) if power else None,
        power_max_w=max(power, default=None),
        gpu_util_mean_pct=round(mean(utils), 1) if utils else None,
        throttle_reasons=reason_names(mask),
        energy_j=energy_j,
        energy_per_image_mj=per_image,
    )


def _optional(read: Callable[[], Any]) -> Any:
    """A reading the GPU may not support (NVMLError_NotSupported and friends): None then."""
    try:
        return read()
    except Exception:
        return None


def visible_device_index(environ: dict[str, str] | None = None) -> tuple[str, int | str]:
    """How to find the GPU this process computes on: ("index", n) or ("uuid", "GPU-...").

    CUDA device 0 is the first entry of CUDA_VISIBLE_DEVICES when set. NVML numbers GPUs in PCI
    order, as CUDA does under CUDA_DEVICE_ORDER=PCI_BUS_ID (the setting benchmark machines use).
    """
    visible = (environ if environ is not None else os.environ).get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if visible.startswith(("GPU-", "MIG-")):
        return "uuid", visible
    return "index", int(visible) if visible.isdigit() else 0


class NvmlSampler:
    """``with NvmlSampler() as gpu: measure(...)`` then ``gpu.window(seconds, images)``.

    Does nothing when not ``enabled`` or where NVML, a driver or a GPU is missing; ``nvml``
    replaces the ``pynvml`` module (tests pass a fake).
    """

    def __init__(self, enabled: bool = True, interval_s: float = 0.1, nvml: Any = None) -> None:
        self.enabled, self.interval_s = enabled, interval_s
        self.samples: list[NvmlSample] = []
        self.device = ""
        self.board_max_clock_mhz: int | None = None
        self._nvml, self._handle = nvml, None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> NvmlSampler:
        if self.enabled and self._open():
            self.samples.append(self._read())
            self._thread = threading.Thread(target=self._run, name="deploybench-nvml", daemon=True)
            self._thread.start()
        return self

    def _open(self) -> bool:
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            nvml = self._nvml
            nvml.nvmlInit()
            how, which = visible_device_index()
            self._handle = (
                nvml.nvmlDeviceGetHandleByUUID(which) if how == "uuid" else nvml.nvmlDeviceGetHandleByIndex(which)
            )
            name = nvml.nvmlDeviceGetName(self._handle)
            self.device = name.decode() if isinstance(name, bytes) else str(name)
        except Exception:  # no package, no driver, no GPU: a sampler never fails the cell
            self._handle = None
            return False
        self.board_max_clock_mhz = _optional(lambda: nvml.nvmlDeviceGetMaxClockInfo(self._handle, nvml.NVML_CLOCK_SM))
        return True

    def _read(self) -> NvmlSample:
        nvml, handle = self._nvml, self._handle
        # Newer NVML names the throttle reasons "clocks event reasons"; older ones only have the former name.
        reasons = (
            getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
            or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        )
        power_mw = _optional(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        util = _optional(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        return NvmlSample(
            t=time.perf_counter(),
            sm_clock_mhz=_optional(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
            mem_clock_mhz=_optional(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM)),
            temperature_c=_optional(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
            power_w=power_mw / 1000 if power_mw is not None else None,
            throttle_mask=int(_optional(lambda: reasons(handle)) or 0),
            energy_mj=_optional(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle)),
            gpu_util_pct=getattr(util, "gpu", None),
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self._read())

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self.samples.append(self._read())  # the window's end
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()

    def window(self, seconds: float, images: int) -> NvmlWindow | None:
        """The summary of the timed window: the last ``seconds`` of sampling, ``images`` processed in it."""
        return summarize(self.samples, self.device, seconds, images, self.board_max_clock_mhz)
