"""Renderings of the run history: a trend table per cell, and an SVG line chart of them all."""

from __future__ import annotations

from dataclasses import astuple

from deploybench.history import TrendPoint
from deploybench.regress import format_percent
from deploybench.report import svg
from deploybench.report.table import format_number
from deploybench.results import CellKey, Status

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
MAX_X_LABELS = 8  # more run dates than this and only every k-th is written under the axis


def cell_label(key: str) -> str:
    """``model|format|runtime|device|precision|batch`` -> ``model format/runtime device precision bN``."""
    cell = CellKey.parse(key)
    return f"{cell.model} {cell.format}/{cell.runtime} {cell.device} {cell.precision} b{cell.batch}"


def legend_labels(keys: list[str]) -> tuple[dict[str, str], str]:
    """Short, distinct legend labels and the fields every cell shares.

    A label is the runtime, precision and batch, plus the model and device when they vary,
    and ``format/runtime`` when some runtime loads more than one format among the cells
    (OpenVINO runs both ``onnx`` and ``ov``). The chart's legend has room for about 30
    characters, so the model and the device, when every plotted cell shares them, move to
    the title (the second value returned).
    """
    fields = [astuple(CellKey.parse(key)) for key in keys]  # model, format, runtime, device, precision, batch
    varies = [len({f[i] for f in fields}) > 1 for i in range(6)]
    formats: dict[str, set[str]] = {}
    for _, fmt, runtime, *_ in fields:
        formats.setdefault(runtime, set()).add(fmt)
    shared = [fields[0][i] for i in (0, 3) if fields and not varies[i]]
    labels = {}
    for key, (model, fmt, runtime, device, precision, batch) in zip(keys, fields):
        parts = [model] if varies[0] else []
        parts += [f"{fmt}/{runtime}" if len(formats[runtime]) > 1 else runtime]
        parts += ([device] if varies[3] else []) + [precision, f"b{batch}"]
        labels[key] = " ".join(parts)
    return labels, ", ".join(shared)


def render_trend_text(series: dict[str, list[TrendPoint]]) -> str:
    """One table per cell: date, run, status, ms/image, its change from the first run, img/s, parity."""
    from tabulate import tabulate

    blocks = []
    for key, points in series.items():
        first = next((p.ms_per_image for p in points if p.ms_per_image), None)
        lines = []
        for p in points:
            change = format_percent(p.ms_per_image / first - 1, signed=True) if first and p.ms_per_image else "-"
            lines.append(
                [
                    p.created.replace("T", " ")[:16],
                    p.run_id,
                    p.status,
                    format_number(p.ms_per_image, 3),
                    change,
                    format_number(p.throughput, 1),
                    format_number(p.peak_rss_mb, 0),
                    p.parity or "-",
                ]
            )
        table = tabulate(
            lines,
            headers=["date", "run", "status", "ms/img", "vs first", "img/s", "host MB", "parity"],
            disable_numparse=True,
        )
        blocks.append(f"{cell_label(key)}\n{table}")
    return "\n\n".join(blocks)


def render_trend_svg(series: dict[str, list[TrendPoint]], title: str) -> str:
    """A standalone SVG: ms/image per run, one line per cell; hollow points failed parity."""
    runs = sorted({(p.created, p.run_id) for points in series.values() for p in points})
    position = {run: index for index, run in enumerate(runs)}
    labels, shared = legend_labels(list(series))
    lines = []
    for key, points in series.items():
        ok = [p for p in points if p.status == Status.OK and p.ms_per_image]
        if ok:
            lines.append(
                svg.Series(
                    name=labels[key],
                    points=[(float(position[(p.created, p.run_id)]), float(p.ms_per_image or 0)) for p in ok],
                    tooltips=[
                        f"{cell_label(key)}, run {p.run_id} ({p.created}): {p.ms_per_image:.3f} ms/img, "
                        f"parity {p.parity or '-'}"
                        for p in ok
                    ],
                    hollow=[p.parity == "fail" for p in ok],
                )
            )
    values = [y for line in lines for _, y in line.points] or [1.0]
    lo, hi, ticks = svg.linear_domain_from_zero(values)
    step = max(1, -(-len(runs) // MAX_X_LABELS))
    x_ticks = [float(i) for i in range(0, len(runs), step)]
    x = svg.Axis(
        "run (date recorded)",
        -0.5,
        max(len(runs) - 0.5, 0.5),
        x_ticks,
        tick_labels={float(i): runs[i][0][5:16].replace("T", " ") for i in range(len(runs))},
    )
    y = svg.Axis("median ms per image (lower is better)", lo, hi, ticks)
    chart = svg.line_chart(
        f"{title} ({shared})" if shared else title, lines, x, y, caption="hollow points: parity failed in that run"
    )
    # Inline SVG in HTML needs no namespace; a file opened on its own does.
    return chart.replace("<svg ", f'<svg xmlns="{SVG_NAMESPACE}" ', 1) + "\n"
