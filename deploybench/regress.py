"""The regression gate: compare a current run with a baseline, cell by cell.

Pure functions over :class:`~deploybench.results.Results`; nothing here runs a model,
reads a file or prints. Cells are matched by their key (model, format, runtime, device,
precision, batch).

The rule, per matching cell:

* **Status**: ``ok`` in the baseline and anything else now (crashed, oom, error, ...) is a
  regression.
* **Parity**: a verdict of ``fail`` now where the baseline did not fail is always a
  regression, whatever the timings say.
* **Speed**: with ``change = (current median - baseline median) / baseline median`` of the
  per-call latency, the cell regresses when ``change > max_slowdown`` **and**
  ``change > noise_k * noise``, where ``noise = sqrt(rb**2 + rc**2)`` combines the relative
  spreads of the two runs. A run's spread is a robust standard deviation of its raw
  ``samples_ms`` (1.4826 x the median absolute deviation, so a few outliers do not widen it),
  falling back to ``stats["std"]`` when the samples were not kept. The spread of single
  iterations is used rather than the standard error of the median on purpose: the standard
  error shrinks with the sample count and ignores run-to-run variation (clocks, placement,
  thermal state), which is what makes two honest runs differ; a noisy cell therefore needs a
  proportionally larger slowdown before it fails the gate, a quiet one is held to
  ``max_slowdown``. A history baseline adds the night-to-night spread of its medians.
* **Memory**: host peak RSS (and device peak, where both runs have it) growing by more than
  ``max_memory_growth`` is a regression.
* Cells only in the baseline are reported as missing (a failure only with
  ``fail_on_missing``); cells only in the current run are reported as new.

Two results are comparable only when :mod:`deploybench.comparability` finds no field that
differs; :func:`gate` refuses otherwise unless forced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median

from deploybench.comparability import IncompatibleBaselineError, incompatibilities
from deploybench.errors import DeployBenchError, UsageError
from deploybench.memory import NVML_WHOLE_GPU
from deploybench.results import CellKey, Results, Row, Status

DEFAULT_MAX_SLOWDOWN = 0.05
DEFAULT_MAX_MEMORY_GROWTH = 0.10
DEFAULT_NOISE_K = 2.0
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation
MIN_SAMPLES_FOR_MAD = 5

REGRESSED, IMPROVED, UNCHANGED, FAILING, MISSING, NEW = "regressed", "improved", "ok", "failing", "missing", "new"


class NoCommonCellsError(DeployBenchError):
    """The two runs share no cell, so nothing was compared (another model list, runtime set or batch)."""

    def __init__(self, baseline: Results, current: Results) -> None:
        super().__init__(
            f"nothing to compare: the baseline and the current run have no cell in common "
            f"(baseline: {_cells_in_words(baseline)}; current: {_cells_in_words(current)}); "
            "gate a run against a baseline of the same models, runtimes, precisions and batch sizes"
        )


def _cells_in_words(results: Results) -> str:
    models = sorted({row.model for row in results.rows})
    shown = ", ".join(models[:3]) + (f" and {len(models) - 3} more" if len(models) > 3 else "")
    return f"{len(results.rows)} cells of {shown}" if results.rows else "no cells"


def parse_fraction(text: str | float, name: str = "value") -> float:
    """``5%`` or ``0.05`` -> 0.05. Negative, non-finite and bare numbers above 1 are refused.

    A bare ``5`` is far more likely a percentage without its sign than a 500 % limit, so it
    is refused rather than guessed; ``500%`` still says 500 % explicitly.
    """
    raw = str(text).strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1]) / 100 if percent else float(raw)
    except ValueError:
        raise UsageError(f"malformed {name} {text!r}; write a percentage like 5% or a fraction like 0.05") from None
    if not math.isfinite(value):
        raise UsageError(f"{name} {text!r} is not a finite number; write a percentage like 5% or a fraction like 0.05")
    if value < 0:
        raise UsageError(f"{name} {text!r} must not be negative")
    if not percent and value > 1:
        raise UsageError(
            f"{name} {text!r} would be {format_percent(value)}; did you mean {raw}%? "
            "Write a percentage like 5% or a fraction like 0.05"
        )
    return value


def format_percent(value: float, signed: bool = False) -> str:
    """0.05 -> '5%', 0.125 -> '12.5%'; ``signed``: '+5%', '-12.5%'."""
    return f"{value:{'+' if signed else ''}.1%}".replace(".0%", "%")


@dataclass(frozen=True)
class Thresholds:
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN
    max_memory_growth: float = DEFAULT_MAX_MEMORY_GROWTH
    noise_k: float = DEFAULT_NOISE_K
    fail_on_missing: bool = False


def robust_spread_ms(row: Row) -> float:
    """A standard deviation of one iteration's latency that a few outliers cannot inflate."""
    samples = row.samples_ms
    if len(samples) >= MIN_SAMPLES_FOR_MAD:
        center = median(samples)
        mad = median([abs(s - center) for s in samples])
        if mad > 0:
            return MAD_TO_SIGMA * mad
    std = row.stats.std if row.stats else 0.0
    return 0.0 if math.isnan(std) else float(std)


def _median_ms(row: Row | None) -> float | None:
    if row is None or row.status != Status.OK or not row.stats:
        return None
    value = row.stats.median
    return float(value) if value and not math.isnan(value) else None


def _growth(old: float | None, new: float | None) -> float | None:
    if old is None or new is None or old <= 0:
        return None
    return (new - old) / old


@dataclass
class CellDelta:
    """One cell's comparison: the two rows, the figures derived from them, and the verdict."""

    key: CellKey
    baseline: Row | None
    current: Row | None
    verdict: str = UNCHANGED
    reasons: list[str] = field(default_factory=list)
    change: float | None = None  # relative change of the median latency (+ is slower)
    noise: float | None = None  # combined relative spread of the two runs
    memory_growth: float | None = None  # relative change of host peak RSS
    device_memory_growth: float | None = None

    @property
    def row(self) -> Row:
        """The row that names the cell (current if present)."""
        row = self.current or self.baseline
        assert row is not None, "a delta has a row on at least one side"
        return row


@dataclass
class RegressionReport:
    deltas: list[CellDelta]
    thresholds: Thresholds
    notes: list[str] = field(default_factory=list)

    def with_verdict(self, *verdicts: str) -> list[CellDelta]:
        return [d for d in self.deltas if d.verdict in verdicts]

    @property
    def regressions(self) -> list[CellDelta]:
        return self.with_verdict(REGRESSED)

    @property
    def missing(self) -> list[CellDelta]:
        return self.with_verdict(MISSING)

    @property
    def passed(self) -> bool:
        return not self.regressions and not (self.thresholds.fail_on_missing and self.missing)

    @property
    def compared(self) -> list[CellDelta]:
        """Cells present in both runs: the only ones a verdict was reached on."""
        return [d for d in self.deltas if d.baseline is not None and d.current is not None]

    def summary(self) -> str:
        counts = {v: len(self.with_verdict(v)) for v in (REGRESSED, IMPROVED, UNCHANGED, FAILING, MISSING, NEW)}
        text = ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no cells"
        return f"{'PASS' if self.passed else 'FAIL'}: {text} ({len(self.compared)} cells compared)"


def cell_delta(baseline: Row | None, current: Row | None, thresholds: Thresholds) -> CellDelta:
    """The verdict for one cell; see the module docstring for the rule."""
    named = current or baseline
    assert named is not None, "a cell is in at least one of the two runs"
    delta = CellDelta(key=named.key, baseline=baseline, current=current)
    if current is None:
        delta.verdict, delta.reasons = MISSING, ["not in the current run"]
        return delta
    if baseline is None:
        delta.verdict, delta.reasons = NEW, ["not in the baseline"]
        return delta
    if baseline.status != Status.OK or current.status != Status.OK:
        if baseline.status == Status.OK:
            delta.verdict = REGRESSED
            delta.reasons.append(f"status ok -> {current.status}: {current.message[:80]}".rstrip(": "))
        elif current.status == Status.OK:
            delta.verdict, delta.reasons = IMPROVED, [f"status {baseline.status} -> ok"]
        else:
            delta.verdict, delta.reasons = FAILING, [f"status {baseline.status} -> {current.status}"]
        return delta

    improved = []
    if current.parity_verdict == "fail" and baseline.parity_verdict != "fail":
        delta.reasons.append(f"parity {baseline.parity_verdict or 'unchecked'} -> fail")
    elif baseline.parity_verdict == "fail" and current.parity_verdict == "pass":
        improved.append("parity fail -> pass")

    old_ms, new_ms = _median_ms(baseline), _median_ms(current)
    if old_ms and new_ms:
        delta.change = (new_ms - old_ms) / old_ms
        delta.noise = math.hypot(robust_spread_ms(baseline) / old_ms, robust_spread_ms(current) / new_ms)
        band = max(thresholds.max_slowdown, thresholds.noise_k * delta.noise)
        if delta.change > band:
            delta.reasons.append(
                f"slower by {format_percent(delta.change)} "
                f"(limit {format_percent(thresholds.max_slowdown)}, "
                f"noise {thresholds.noise_k:g}x{format_percent(delta.noise)})"
            )
        elif -delta.change > band:
            improved.append(f"faster by {format_percent(-delta.change)}")

    delta.memory_growth = _growth(baseline.peak_rss_mb, current.peak_rss_mb)
    if _whole_gpu_memory(baseline) == _whole_gpu_memory(current):
        delta.device_memory_growth = _growth(baseline.peak_device_mb, current.peak_device_mb)
    for label, growth in (("host", delta.memory_growth), ("device", delta.device_memory_growth)):
        if growth is not None and growth > thresholds.max_memory_growth:
            delta.reasons.append(
                f"{label} memory {format_percent(growth, signed=True)} "
                f"(limit {format_percent(thresholds.max_memory_growth)})"
            )

    if delta.reasons:
        delta.verdict = REGRESSED
    elif improved:
        delta.verdict, delta.reasons = IMPROVED, improved
    return delta


def _whole_gpu_memory(row: Row) -> bool:
    """Whether the row's device memory is the whole GPU's (NVML could not see its process): such a
    figure holds every process on the GPU and cannot be set against one process's."""
    source = row.memory.device_source if row.memory else None
    return bool(source and source.startswith(NVML_WHOLE_GPU))


def gate(
    baseline: Results, current: Results, thresholds: Thresholds = Thresholds(), force: bool = False
) -> RegressionReport:
    """Every cell of ``current`` against ``baseline``.

    Raises :class:`IncompatibleBaselineError` when the setups differ, unless ``force``;
    then the differences are kept as notes on the report. Raises :class:`NoCommonCellsError`
    when the two runs share no cell: a gate that compared nothing must not pass.
    """
    differences = incompatibilities(baseline, current)
    if differences and not force:
        raise IncompatibleBaselineError(differences)
    notes = [f"compared despite differing {d} (--force)" for d in differences]
    old = {row.key: row for row in baseline.rows}
    new = {row.key: row for row in current.rows}
    if not set(old) & set(new):
        raise NoCommonCellsError(baseline, current)
    keys = list(new) + [key for key in old if key not in new]
    deltas = [cell_delta(old.get(key), new.get(key), thresholds) for key in keys]
    return RegressionReport(deltas=deltas, thresholds=thresholds, notes=notes)
