"""The regression gate's delta table, as text for a terminal or Markdown for a CI job summary."""

from __future__ import annotations

from deploybench.regress import REGRESSED, CellDelta, RegressionReport

COLUMNS = ["model", "format", "runtime", "device", "precision", "batch", "base ms/img", "now ms/img", "change",
           "noise", "host MB", "mem", "parity", "verdict"]
MARKS = {REGRESSED: "!!"}


def _ms(delta: CellDelta, which: str) -> str:
    row = getattr(delta, which)
    return "-" if row is None or row.ms_per_image is None else f"{row.ms_per_image:.3f}"


def _pct(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:+.1%}" if signed else f"±{value:.1%}"


def _parity(delta: CellDelta) -> str:
    old = delta.baseline.parity_verdict if delta.baseline else None
    new = delta.current.parity_verdict if delta.current else None
    return f"{old or '-'} -> {new or '-'}" if old != new else (new or "-")


def _memory(delta: CellDelta) -> str:
    row = delta.current or delta.baseline
    value = row.memory.get("peak_rss_mb") if row else None
    return "-" if value is None else f"{value:.0f}"


def delta_rows(report: RegressionReport) -> list[list[str]]:
    lines = []
    for d in report.deltas:
        row = d.row
        verdict = MARKS.get(d.verdict, "") + d.verdict + (f": {'; '.join(d.reasons)}" if d.reasons else "")
        lines.append([row.model, row.format, row.runtime, row.device, row.precision, str(row.batch), _ms(d, "baseline"),
                      _ms(d, "current"), _pct(d.change), _pct(d.noise, signed=False), _memory(d),
                      _pct(d.memory_growth), _parity(d), verdict])
    return lines


def _legend(report: RegressionReport) -> str:
    t = report.thresholds
    return (f"limits: slowdown {t.max_slowdown:.1%} and more than {t.noise_k:g}x the combined spread (noise); "
            f"memory growth {t.max_memory_growth:.1%}; any parity pass -> fail or ok -> failed status regresses")


def render_deltas(report: RegressionReport, fmt: str = "simple") -> str:
    """The delta table, the limits applied, any notes and the one-line verdict."""
    from tabulate import tabulate

    table = tabulate(delta_rows(report), headers=COLUMNS, tablefmt=fmt, disable_numparse=True)
    separator = "\n\n" if fmt == "github" else "\n"  # Markdown joins single lines into one paragraph
    return table + "\n\n" + separator.join([_legend(report), *report.notes, report.summary()])


def render_markdown(report: RegressionReport, title: str = "Regression check") -> str:
    """A heading with the verdict, then the table in GitHub's Markdown."""
    verdict = "passed" if report.passed else f"FAILED ({len(report.regressions)} regressions)"
    return f"## {title}: {verdict}\n\n" + render_deltas(report, fmt="github") + "\n"
