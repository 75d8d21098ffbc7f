"""The regression gate's delta table, as text for a terminal or Markdown for a CI job summary."""

from __future__ import annotations

from deploybench.regress import REGRESSED, CellDelta, RegressionReport, format_percent

COLUMNS = [
    "model",
    "format",
    "runtime",
    "device",
    "precision",
    "batch",
    "base ms/img",
    "now ms/img",
    "change",
    "noise",
    "host MB",
    "mem",
    "parity",
    "verdict",
]
MARKS = {REGRESSED: "!!"}


def _ms(delta: CellDelta, which: str) -> str:
    row = getattr(delta, which)
    return "-" if row is None or row.ms_per_image is None else f"{row.ms_per_image:.3f}"


def _change(value: float | None) -> str:
    return "-" if value is None else format_percent(value, signed=True)


def _noise(value: float | None) -> str:
    return "-" if value is None else f"±{format_percent(value)}"


def _parity(delta: CellDelta) -> str:
    old = delta.baseline.parity_verdict if delta.baseline else None
    new = delta.current.parity_verdict if delta.current else None
    return f"{old or '-'} -> {new or '-'}" if old != new else (new or "-")


def _memory(delta: CellDelta) -> str:
    row = delta.current or delta.baseline
    value = row.peak_rss_mb if row else None
    return "-" if value is None else f"{value:.0f}"


def delta_rows(report: RegressionReport) -> list[list[str]]:
    lines = []
    for d in report.deltas:
        row = d.row
        verdict = MARKS.get(d.verdict, "") + d.verdict + (f": {'; '.join(d.reasons)}" if d.reasons else "")
        lines.append(
            [
                row.model,
                row.format,
                row.runtime,
                row.device,
                row.precision,
                str(row.batch),
                _ms(d, "baseline"),
                _ms(d, "current"),
                _change(d.change),
                _noise(d.noise),
                _memory(d),
                _change(d.memory_growth),
                _parity(d),
                verdict,
            ]
        )
    return lines


def markdown_cell(text: str) -> str:
    """Cell text safe inside a Markdown table: a bare ``|`` (say in an error message) would end the cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _legend(report: RegressionReport) -> str:
    t = report.thresholds
    return (
        f"limits: slowdown {format_percent(t.max_slowdown)} and more than {t.noise_k:g}x the combined spread "
        f"(noise); memory growth {format_percent(t.max_memory_growth)}; a parity verdict turning to fail "
        "(from any other) or a cell that ran before failing now regresses"
    )


def render_deltas(report: RegressionReport, fmt: str = "simple") -> str:
    """The delta table, the limits applied, any notes and the one-line verdict."""
    from tabulate import tabulate

    rows = delta_rows(report)
    if fmt == "github":
        rows = [[markdown_cell(cell) for cell in row] for row in rows]
    table = tabulate(rows, headers=COLUMNS, tablefmt=fmt, disable_numparse=True)
    separator = "\n\n" if fmt == "github" else "\n"  # Markdown joins single lines into one paragraph
    return table + "\n\n" + separator.join([_legend(report), *report.notes, report.summary()])


def render_markdown(report: RegressionReport, title: str = "Regression check") -> str:
    """A heading with the verdict, then the table in GitHub's Markdown."""
    verdict = "passed" if report.passed else f"FAILED ({len(report.regressions)} regressions)"
    return f"## {title}: {verdict}\n\n" + render_deltas(report, fmt="github") + "\n"
