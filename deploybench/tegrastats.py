"""Power and clocks on Jetson boards, read from NVIDIA's ``tegrastats`` utility.

``tegrastats --interval MS`` prints one line per interval. The fields used here, in the
formats the Jetson Linux Developer Guide documents:

* power rails, ``NAME current/average`` in milliwatts: ``VDD_IN 5251mW/8535mW`` (Xavier,
  Orin) or ``POM_5V_IN 1883/1883`` (Nano, TX2: no unit);
* the iGPU, ``GR3D_FREQ load%@clock``: ``GR3D_FREQ 99%@[1300]`` (per GPC on Orin:
  ``@[611,0]``), ``GR3D_FREQ 0%@921`` (older releases) or just ``GR3D_FREQ 0%`` when idle;
* the memory controller, ``EMC_FREQ load%@clock``.

:class:`TegrastatsSampler` runs the utility in the background around a timed loop and
summarises what it printed; it is a no-op where the utility is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

TEGRASTATS = Path("/usr/bin/tegrastats")
# Rails that measure the whole module's input; other rails are parts of it.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?\b")
_ENGINE = re.compile(r"\b(GR3D_FREQ|EMC_FREQ)\s+(\d+)%(?:@\[?([\d,]+)\]?)?")
_RAM = re.compile(r"\bRAM\s+(\d+)/(\d+)MB")


@dataclass(frozen=True)
class TegraSample:
    """One tegrastats line: rail powers (mW) and engine loads and clocks."""

    rails_mw: dict[str, int] = field(default_factory=dict)
    gpu_load_pct: int | None = None
    gpu_clock_mhz: int | None = None
    emc_load_pct: int | None = None
    emc_clock_mhz: int | None = None
    ram_used_mb: int | None = None

    @property
    def total_power_mw(self) -> int | None:
        """The module's input rail where the board reports one, else the sum of all rails."""
        for name in INPUT_RAILS:
            if name in self.rails_mw:
                return self.rails_mw[name]
        return sum(self.rails_mw.values()) if self.rails_mw else None


def _clock(text: str | None) -> int | None:
    """``1300`` or ``611,0`` (one clock per GPC: the running ones agree, power-gated ones read 0)."""
    if not text:
        return None
    return max(int(v) for v in text.split(",") if v) or None  # all GPCs gated: no clock to report


def parse_line(line: str) -> TegraSample:
    """Parse one tegrastats line; fields the board does not print stay None/empty."""
    engines = {name: (int(load), _clock(clock)) for name, load, clock in _ENGINE.findall(line)}
    gpu, emc = engines.get("GR3D_FREQ", (None, None)), engines.get("EMC_FREQ", (None, None))
    ram = _RAM.search(line)
    # RAM and SWAP also look like "NAME a/b": only the rails are followed by a space or the end.
    rails = {name: int(current) for name, current, _ in _RAIL.findall(line) if name not in ("RAM", "SWAP")}
    return TegraSample(
        rails_mw=rails,
        gpu_load_pct=gpu[0],
        gpu_clock_mhz=gpu[1],
        emc_load_pct=emc[0],
        emc_clock_mhz=emc[1],
        ram_used_mb=int(ram.group(1)) if ram else None,
    )


def summarize(samples: list[TegraSample]) -> dict[str, Any]:
    """Mean and peak power, mean GPU clock and load over a window; empty without samples."""
    if not samples:
        return {}
    power = [s.total_power_mw for s in samples if s.total_power_mw is not None]
    clocks = [s.gpu_clock_mhz for s in samples if s.gpu_clock_mhz]
    loads = [s.gpu_load_pct for s in samples if s.gpu_load_pct is not None]
    summary: dict[str, Any] = {"samples": len(samples)}
    if power:
        summary.update(power_mean_mw=round(mean(power), 1), power_max_mw=max(power))
    if clocks:
        summary.update(gpu_clock_mean_mhz=round(mean(clocks), 1), gpu_clock_min_mhz=min(clocks))
    if loads:
        summary["gpu_load_mean_pct"] = round(mean(loads), 1)
    return summary


def available() -> bool:
    return TEGRASTATS.exists() or shutil.which("tegrastats") is not None


class TegrastatsSampler:
    """``with TegrastatsSampler() as s: ...`` then ``s.summary()``; does nothing without tegrastats
    or when not ``enabled``."""

    def __init__(self, interval_ms: int = 100, enabled: bool = True) -> None:
        self.interval_ms, self.enabled = interval_ms, enabled
        self.samples: list[TegraSample] = []
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> TegrastatsSampler:
        binary = str(TEGRASTATS) if TEGRASTATS.exists() else shutil.which("tegrastats")
        if binary and self.enabled:
            self._proc = subprocess.Popen(
                [binary, "--interval", str(self.interval_ms)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            self._reader = threading.Thread(target=self._read, name="deploybench-tegrastats", daemon=True)
            self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.samples.append(parse_line(line))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # a sampler must never outlive, or fail, the cell
                self._proc.kill()
                self._proc.wait()
            if self._reader is not None:
                self._reader.join(timeout=5)

    def summary(self) -> dict[str, Any]:
        return summarize(self.samples)
