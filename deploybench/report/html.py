"""The self-contained HTML report: header, machine fingerprint, comparison table, plots, row details.

One file with inline CSS and inline SVG, no scripts and no network fetches, so it opens
offline and can be mailed or attached to a CI run. Every string that comes from a results
file (model names, error messages, library output) goes through ``html.escape``; a
Content-Security-Policy that forbids scripts and remote loads backs that up.
"""

from __future__ import annotations

import json
import math
import shlex
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict
from html import escape
from typing import Any

from deploybench.parity import Parity
from deploybench.report import svg
from deploybench.report.table import COLUMNS, FASTEST_MARK, footnotes, table_rows
from deploybench.results import Results, Row, Status

# Parity errors of exactly zero cannot sit on a log axis: they are drawn one decade below the
# smallest non-zero error (or here, when every error is zero) and the tick reads "0".
ZERO_ERROR_FLOOR = 1e-9
VERDICT_COLOURS = {"pass": "#2ca02c", "fail": "#d62728", "inconclusive": "#e0a100", "not checked": "#7f7f7f"}
NUMERIC_COLUMNS = {
    "batch",
    "threads",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "ms/img",
    "img/s",
    "GFLOP/s",
    "host MB",
    "dev MB",
    "artifact MB",
    "vs eager",
}

CSS = """
:root { --fail: #fde2e1; --fail-ink: #b3261e; --bad: #fff1d6; --bad-ink: #8a5a00; --pass-ink: #1e7b34;
        --fast: #e6f4ea; --line: #d9d9d9; --muted: #666; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1a1a1a;
       margin: 0 auto; padding: 20px 28px 48px; max-width: 1600px; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.muted { color: var(--muted); }
.summary span { display: inline-block; margin-right: 14px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.card h3 { margin-top: 0; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; white-space: nowrap; }
table.kv th { background: none; font-weight: normal; color: var(--muted); }
table.kv { width: 100%; } table.kv td { word-break: break-word; }
.results-wrap { overflow-x: auto; }
table.results { font-size: 13px; } table.results th, table.results td { padding: 3px 6px; }
table.results td { white-space: nowrap; } table.results a { color: inherit; }
table.results td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.results td.status { white-space: normal; min-width: 8em; max-width: 24em; }
table.results td.model { white-space: normal; overflow-wrap: anywhere; max-width: 16em; }
tr.fastest { background: var(--fast); font-weight: 600; }
tr.parity-fail { background: var(--fail); }
tr.not-ok { background: var(--bad); color: #555; }
td.parity-fail, td.status-bad { color: var(--fail-ink); font-weight: 600; }
td.parity-pass { color: var(--pass-ink); } td.parity-inconclusive { color: var(--bad-ink); }
.star { color: #c98a00; font-size: 16px; }
.badge { display: inline-block; padding: 0 6px; margin: 1px 2px; border-radius: 9px; font-size: 12px;
         border: 1px solid var(--line); }
.badge.on { background: #e6f4ea; border-color: #9fd3ab; } .badge.off { color: #999; text-decoration: line-through; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 12px; }
.charts svg.scatter-chart { grid-column: 1 / -1; max-width: 1100px; }
.charts svg { width: 100%; height: auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 10px; }
details { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; padding: 4px 12px; }
details.parity-fail { border-left: 5px solid var(--fail-ink); } details.not-ok { border-left: 5px solid #e0a100; }
details summary { cursor: pointer; font-weight: 600; }
details .card.wide { grid-column: 1 / -1; } .card.wide table.kv { width: auto; min-width: 40%; }
details .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 10px; margin: 8px 0; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f6f6; padding: 6px 8px; margin: 4px 0;
      font-size: 12px; }
ul.reasons { margin: 4px 0; color: var(--fail-ink); }
"""

STAR = '<span class="star" title="fastest row that passed parity for this model and batch size">★</span>'

# No scripts, nothing fetched: inline styles and data: images only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render_html(results: Results) -> str:
    """The whole report as one HTML document."""
    models = _unique(r.model for r in results.rows)
    title = "deploybench report" + (f" — {', '.join(models)}" if models else "")
    body = [
        _header(results, title),
        _environment(results.environment),
        _config(results.config),
        _table(results),
        _charts(results, models),
        _details(results),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# -- header, environment, config ---------------------------------------------------------


def _header(results: Results, title: str) -> str:
    rows = results.rows
    counts = [
        (len(rows), "rows"),
        (sum(r.status == Status.OK for r in rows), "ran"),
        (sum(r.parity_verdict == "pass" for r in rows), "passed parity"),
        (sum(r.parity_verdict == "fail" for r in rows), "failed parity"),
        (sum(r.parity_verdict == "inconclusive" for r in rows), "inconclusive parity"),
        (sum(r.status != Status.OK for r in rows), "did not run to the end"),
    ]
    summary = "".join(f"<span><b>{n}</b> {escape(label)}</span>" for n, label in counts)
    return (
        f"<header><h1>{escape(title)}</h1>"
        f'<div class="muted">created {escape(str(results.created))} · results schema '
        f'v{escape(str(results.schema_version))}</div><p class="summary">{summary}</p></header>'
    )


def _environment(env: dict[str, Any]) -> str:
    cpu = env.get("cpu") or {}
    cores = ", ".join(
        f"{cpu[k]} {label}"
        for k, label in (("usable_cores", "usable"), ("logical_cores", "logical"), ("physical_cores", "physical"))
        if cpu.get(k) is not None
    )
    machine = {
        "CPU": cpu.get("model"),
        "architecture": cpu.get("arch"),
        "cores": cores or None,
        "memory": f"{env['memory_mb'] / 1024:.1f} GiB" if env.get("memory_mb") else None,
        "OS": env.get("os"),
        "Python": env.get("python"),
        "host": env.get("hostname"),
    }
    features = cpu.get("features") or {}
    badges = (
        "".join(f'<span class="badge {"on" if on else "off"}">{escape(name)}</span>' for name, on in features.items())
        or '<span class="muted">not recorded</span>'
    )
    gpus = env.get("gpus") or []
    gpu_lines = "".join(
        f"<li>{escape(str(g.get('name', '?')))} (compute {escape(str(g.get('compute_capability', '?')))}, "
        f"{escape(str(g.get('memory_mb', '?')))} MB, driver {escape(str(g.get('driver', '?')))}, "
        f"CUDA {escape(str(g.get('cuda_driver', '?')))})</li>"
        for g in gpus
    )
    libraries = env.get("libraries") or {}
    installed = {name: v for name, v in libraries.items() if v}
    missing = sorted(name for name, v in libraries.items() if not v)
    return (
        '<section id="environment"><h2>Environment</h2><div class="cards">'
        f'<div class="card"><h3>Machine</h3>{_kv_table(machine)}'
        f"<h3>ISA features</h3><div>{badges}</div></div>"
        f'<div class="card"><h3>GPUs</h3>{f"<ul>{gpu_lines}</ul>" if gpus else "<p class=muted>none</p>"}'
        f"<h3>Libraries</h3>{_kv_table(installed)}"
        + (f'<p class="muted">not installed: {escape(", ".join(missing))}</p>' if missing else "")
        + "</div></div></section>"
    )


def _config(config: dict[str, Any]) -> str:
    shown = dict(config)
    if isinstance(shown.get("argv"), list):  # the command line reads better as one shell line
        shown["argv"] = shlex.join(str(a) for a in shown["argv"])
    return f'<section id="config"><h2>Configuration</h2><div class="card">{_kv_table(shown)}</div></section>'


# -- comparison table --------------------------------------------------------------------


def _table(results: Results) -> str:
    parity_col = COLUMNS.index("parity") if "parity" in COLUMNS else -1
    status_col = COLUMNS.index("status") if "status" in COLUMNS else -1
    model_col = COLUMNS.index("model") if "model" in COLUMNS else -1
    head = "".join(f"<th>{escape(name)}</th>" for name in COLUMNS)
    lines = []
    for index, (row, cells) in enumerate(zip(results.rows, table_rows(results))):
        fastest = bool(cells) and cells[0] == FASTEST_MARK
        tr_classes = _row_classes(row) + (["fastest"] if fastest else [])
        tds = []
        for col, value in enumerate(cells):
            classes = []
            if COLUMNS[col] in NUMERIC_COLUMNS:
                classes.append("num")
            if col == parity_col and row.parity_verdict in ("pass", "fail", "inconclusive"):  # never raw file text
                classes.append(f"parity-{row.parity_verdict}")
            if col == status_col:
                classes += ["status"] + (["status-bad"] if row.status != Status.OK else [])
            text = escape(str(value))
            if col == 0 and fastest:
                text = STAR
            if col == model_col:  # the model name links to the row's details
                classes.append("model")
                text = f'<a href="#row-{index}" title="details">{text}</a>'
            tds.append(f'<td class="{" ".join(classes)}">{text}</td>' if classes else f"<td>{text}</td>")
        lines.append(f'<tr class="{" ".join(tr_classes)}">{"".join(tds)}</tr>')
    legend = (
        '<p class="note"><span class="star">★</span> fastest row that passed parity, per model and '
        'batch size · <span style="background:var(--fail)">red rows</span> failed parity · '
        '<span style="background:var(--bad)">amber rows</span> did not run to the end · '
        "click a model name for the row's details</p>"
    )
    legend += "".join(f'<p class="note">{escape(note)}</p>' for note in footnotes(results)[1:])  # references
    return (
        f'<section id="table"><h2>Comparison</h2>{legend}<div class="results-wrap"><table class="results">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table></div></section>"
    )


def _row_classes(row: Row) -> list[str]:
    classes = []
    if row.parity_verdict == "fail":
        classes.append("parity-fail")
    if row.status != Status.OK:
        classes.append("not-ok")
    return classes


# -- plots -------------------------------------------------------------------------------


def measured(rows: Iterable[Row]) -> list[Row]:
    """Rows a speed plot can show: ran to the end and have statistics."""
    return [r for r in rows if r.status == Status.OK and r.stats and r.ms_per_image and r.ms_per_image > 0]


def series_name(row: Row) -> str:
    return f"{row.format}/{row.runtime}/{row.precision}"


def parity_error(row: Row) -> float | None:
    """The largest per-image error over the row's outputs; NaN when one is not finite; None without parity."""
    outputs = row.parity.outputs if row.parity else []
    if any(o.nonfinite for o in outputs):
        return math.nan
    # The per-image error; results written before it existed have only norm_error.
    picked = [o.error if o.error is not None else o.norm_error for o in outputs]
    errors = [float(e) for e in picked if e is not None]
    if not errors:
        return None
    return max(errors) if all(math.isfinite(e) for e in errors) else math.nan


def _charts(results: Results, models: list[str]) -> str:
    sections = []
    for model in models:
        rows = [r for r in results.rows if r.model == model]
        ok = measured(rows)
        skipped = len(rows) - len(ok)
        note = (
            f'<p class="note">{skipped} row(s) without a measurement (failed, crashed or unsupported) are '
            "left out of the plots.</p>"
            if skipped
            else ""
        )
        if not ok:
            charts = '<p class="note">No row of this model produced a measurement, so there is nothing to plot.</p>'
        else:
            charts = (
                '<div class="charts">'
                + latency_chart(model, ok)
                + throughput_chart(model, ok)
                + tradeoff_chart(model, ok)
                + "</div>"
            )
        sections.append(f"<h3>{escape(model)}</h3>{note}{charts}")
    across = accuracy_chart(measured(results.rows))
    if across:
        sections.append(f'<h3>Accuracy against speed, every model</h3><div class="charts">{across}</div>')
    return '<section id="plots"><h2>Plots</h2>' + "".join(sections) + "</section>"


def _batch_axis(rows: list[Row]) -> svg.Axis:
    batches = sorted({r.batch for r in rows})
    # Batch sizes grow geometrically (1, 8, 32), so a log axis spaces them evenly.
    lo, hi = (batches[0] / 1.5, batches[-1] * 1.5) if len(batches) > 1 else (batches[0] / 2, batches[0] * 2)
    return svg.Axis("batch size", max(lo, 1e-3), hi, [float(b) for b in batches], log=True)


def _speed_series(rows: list[Row], value: Callable[[Row], float | None], unit: str) -> list[svg.Series]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[series_name(row)].append(row)
    series = []
    for name in sorted(groups):
        points = [(float(r.batch), y) for r in groups[name] if (y := value(r)) is not None]
        tooltips = [
            f"{name} batch {r.batch}: {value(r):.4g} {unit}, parity {r.parity_verdict or 'not checked'}"
            for r in groups[name]
            if value(r) is not None
        ]
        hollow = [r.parity_verdict == "fail" for r in groups[name] if value(r) is not None]
        if points:
            series.append(svg.Series(name, points, tooltips, hollow))
    return series


def latency_chart(model: str, rows: list[Row]) -> str:
    """Median ms per image against batch size, one line per format/runtime/precision."""
    series = _speed_series(rows, lambda r: r.ms_per_image, "ms/image")
    lo, hi, ticks = svg.linear_domain_from_zero([y for s in series for _, y in s.points])
    y = svg.Axis("median latency per image (ms/image, lower is better)", lo, hi, ticks)
    return svg.line_chart(f"{model}: latency", series, _batch_axis(rows), y, caption=_hollow_note(rows))


def throughput_chart(model: str, rows: list[Row]) -> str:
    """Images per second against batch size, one line per format/runtime/precision."""
    series = _speed_series(rows, lambda r: r.throughput, "images/s")
    if not series:
        return '<p class="note">No throughput recorded.</p>'
    lo, hi, ticks = svg.linear_domain_from_zero([y for s in series for _, y in s.points])
    y = svg.Axis("throughput (images/s, higher is better)", lo, hi, ticks)
    return svg.line_chart(f"{model}: throughput", series, _batch_axis(rows), y, caption=_hollow_note(rows))


def _hollow_note(rows: list[Row]) -> str:
    return "Hollow markers: parity failed." if any(r.parity_verdict == "fail" for r in rows) else ""


def tradeoff_chart(model: str, rows: list[Row]) -> str:
    """Speed against parity error, one labelled point per row, coloured by parity verdict."""
    checked = [(r, e) for r in rows if (e := parity_error(r)) is not None]
    if not checked:
        return '<p class="note">No parity was recorded, so there is no speed/accuracy trade-off to plot.</p>'
    finite = [e for _, e in checked if not math.isnan(e)]
    nonzero = [e for e in finite if e > 0]
    floor = 10.0 ** (math.floor(math.log10(min(nonzero))) - 1) if nonzero else ZERO_ERROR_FLOOR
    tolerances = _tolerance_lines(r for r, _ in checked)
    top = 10.0 ** math.ceil(math.log10(max(nonzero + [t.y for t in tolerances] + [floor * 10])))
    ticks = [10.0**k for k in range(round(math.log10(floor)), round(math.log10(top)) + 1)]
    labels = {floor: "0"}
    nan_at = None
    if len(finite) < len(checked):  # non-finite outputs sit on their own line above the scale
        nan_at = top * 10
        ticks.append(nan_at)
        labels[nan_at] = "NaN/Inf"
    if len(ticks) > 8:  # keep every other decade so labels do not crowd
        keep = set(ticks[::2]) | {floor} | ({nan_at} if nan_at else set())
        ticks = sorted(keep)
    y = svg.Axis(
        "parity error: worst image's RMS error / output RMS (log)",
        floor / 2,
        ticks[-1] * 2,
        ticks,
        log=True,
        tick_labels=labels,
    )
    speeds = [r.ms_per_image or 0.0 for r, _ in checked]
    x_lo, x_hi = svg.log_domain(speeds, pad=1.4)
    x = svg.Axis("ms per image (log, lower is better)", x_lo, x_hi, svg.log_ticks(x_lo, x_hi), log=True)
    ambiguous = _ambiguous_labels(r for r, _ in checked)
    points = []
    for row, error in checked:
        verdict = row.parity_verdict or "not checked"
        label = f"{row.runtime}/{row.precision} b{row.batch}"
        if label in ambiguous:
            label += f" ({row.format})"
        plotted = nan_at if nan_at is not None and math.isnan(error) else max(error, floor)
        error_text = "NaN/Inf" if math.isnan(error) else f"{error:.2e}"
        tooltip = (
            f"{series_name(row)} batch {row.batch}: {row.ms_per_image:.4g} ms/image, error {error_text}, {verdict}"
        )
        points.append(svg.Point(row.ms_per_image or 0.0, plotted, label, verdict, tooltip))
    verdicts = _unique(p.group for p in points)
    colours: dict[str, str] = {
        v: VERDICT_COLOURS.get(v, svg.PALETTE[-2])
        for v in ("pass", "fail", "inconclusive", "not checked")
        if v in verdicts
    }
    caption = "Error 0 (identical outputs) is drawn on the bottom line. Dashed: tolerance of each precision."
    return svg.scatter_chart(f"{model}: speed vs parity error", points, colours, x, y, tolerances, caption)


def accuracy_chart(rows: list[Row]) -> str:
    """With ``--dataset``: top-1 accuracy against ms/image across models and formats, each
    bubble's area the artifact's size on disk (the chart model-comparison posts draw)."""
    scored = [r for r in rows if r.parity and r.parity.accuracy and r.ms_per_image]
    if not scored:
        return ""
    sizes = [float(r.artifact_mb or 0.0) for r in scored]
    largest = max(sizes) or 1.0
    x_lo, x_hi = svg.log_domain([r.ms_per_image or 0.0 for r in scored], pad=1.4)
    x = svg.Axis("ms per image (log, lower is better)", x_lo, x_hi, svg.log_ticks(x_lo, x_hi), log=True)
    accuracies = [100.0 * r.parity.accuracy["top1"] for r in scored if r.parity and r.parity.accuracy]
    lo, hi = max(0.0, min(accuracies) - 5.0), min(100.0, max(accuracies) + 5.0)
    y = svg.Axis("top-1 accuracy on --dataset (%, higher is better)", lo, hi, svg.linear_ticks(lo, hi))
    points = []
    for row, accuracy, size in zip(scored, accuracies, sizes):
        tooltip = (
            f"{row.model} {series_name(row)} batch {row.batch}: {row.ms_per_image:.4g} ms/image, "
            f"top-1 {accuracy:.1f} %, artifact {size:.1f} MB"
        )
        radius = 4.0 + 14.0 * math.sqrt(size / largest)  # area proportional to size on disk
        points.append(
            svg.Point(
                row.ms_per_image or 0.0,
                accuracy,
                f"{row.runtime}/{row.format}/{row.precision} b{row.batch}",
                row.model,
                tooltip,
                radius,
            )
        )
    colours = {
        model: svg.PALETTE[index % len(svg.PALETTE)] for index, model in enumerate(_unique(r.model for r in scored))
    }
    caption = "Bubble area: the artifact's size on disk (PyTorch eager rows have none and are drawn smallest)."
    return svg.scatter_chart("accuracy vs speed", points, colours, x, y, caption=caption)


def _tolerance_lines(rows: Iterable[Row]) -> list[svg.HLine]:
    by_value: dict[float, list[str]] = defaultdict(list)
    for row in rows:
        tolerance = row.parity.tolerance if row.parity else {}
        value = tolerance.get("max_error", tolerance.get("max_norm_error"))
        precision = row.parity.precision if row.parity else row.precision
        if value and precision not in by_value[value]:
            by_value[value].append(precision)
    return [svg.HLine(value, f"{'/'.join(names)} tolerance") for value, names in sorted(by_value.items())]


def _ambiguous_labels(rows: Iterable[Row]) -> set[str]:
    """Runtime/precision/batch labels that more than one format shares in the same chart."""
    formats: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        formats[f"{row.runtime}/{row.precision} b{row.batch}"].add(row.format)
    return {label for label, found in formats.items() if len(found) > 1}


# -- per-row details ---------------------------------------------------------------------


def _details(results: Results) -> str:
    blocks = [_row_detail(index, row) for index, row in enumerate(results.rows)]
    return '<section id="details"><h2>Row details</h2>' + "".join(blocks) + "</section>"


def _row_detail(index: int, row: Row) -> str:
    verdict = row.parity_verdict or "not checked"
    summary = (
        f"{row.model} · {row.format}/{row.runtime} · {row.device} · {row.precision} · batch {row.batch} — "
        f"{row.status}, parity {verdict}"
    )
    run = {
        "status": row.status,
        "weights": row.weights or None,
        "precision used": row.precision_used,
        "timed region": row.timed_region,
        "threads": row.threads,
        "ms/image": row.ms_per_image,
        "images/s": row.throughput,
        "items per call": row.items_per_call,
        "timed window (s)": row.window_seconds,
        "first inference (ms)": row.first_inference_ms,
        "load (s)": row.load_seconds,
        "samples": len(row.samples_ms),
    }
    cards = [
        _card(
            "Run",
            _kv_table(run)
            + (f"<pre>{escape(row.message)}</pre>" if row.message else "")
            + (
                f"<h4>Warnings</h4><ul>{''.join(f'<li>{escape(w)}</li>' for w in row.warnings)}</ul>"
                if row.warnings
                else ""
            ),
        )
    ]
    if row.stats:
        stats = asdict(row.stats)
        cards.append(_card("Latency (ms per call)", _kv_table(stats)))
    if row.parity:
        cards.append(_card(f"Parity: {verdict}", _parity_detail(row.parity), wide=True))
    if row.triage:
        from deploybench.report.triage_html import triage_card

        cards.append(triage_card(row.triage))
    if row.runtime_info:
        cards.append(_card("Runtime", _kv_table(row.runtime_info)))
    if row.memory or row.artifact:
        figures = {**(row.memory.to_dict() if row.memory else {}), **(asdict(row.artifact) if row.artifact else {})}
        cards.append(_card("Memory and artifact", _kv_table(figures)))
    classes = " ".join(_row_classes(row))
    return (
        f'<details id="row-{index}" class="{classes}"><summary>{escape(summary)}</summary>'
        f'<div class="grid">{"".join(cards)}</div></details>'
    )


def _parity_detail(parity: Parity) -> str:
    parts = []
    reasons = parity.reasons
    if reasons:
        parts.append('<ul class="reasons">' + "".join(f"<li>{escape(str(r))}</li>" for r in reasons) + "</ul>")
    outputs = [asdict(o) for o in parity.outputs]
    if outputs:
        keys = [
            "name",
            "shape",
            "error",
            "spread_error",
            "centered_cosine",
            "spread_ratio",
            "gain",
            "offset",
            "mixups",
            "norm_error",
            "max_abs_error",
            "mean_abs_error",
            "max_rel_error",
            "cosine",
            "nonfinite",
        ]
        head = "".join(f"<th>{escape(k.replace('_', ' '))}</th>" for k in keys)
        body = "".join("<tr>" + "".join(f"<td>{_value(o.get(k))}</td>" for k in keys) + "</tr>" for o in outputs)
        parts.append(
            f'<div class="results-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
        )
    extra = {
        k: v
        for k, v in asdict(parity).items()
        if k not in ("verdict", "outputs", "reasons") and v not in (None, {}, [])
    }
    if extra:
        parts.append(_kv_table(extra))
    return "".join(parts)


def _card(title: str, content: str, wide: bool = False) -> str:
    return f'<div class="card{" wide" if wide else ""}"><h3>{escape(title)}</h3>{content}</div>'


def _kv_table(mapping: dict[str, Any]) -> str:
    rows = [(k, v) for k, v in mapping.items() if v is not None and v != ""]
    if not rows:
        return '<p class="muted">none</p>'
    return (
        '<table class="kv">'
        + "".join(f"<tr><th>{escape(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in rows)
        + "</table>"
    )


def _value(value: Any) -> str:
    """A cell's text, escaped: numbers compact, containers as JSON."""
    if isinstance(value, bool) or value is None:
        return escape(str(value))
    if isinstance(value, float):
        return escape(
            f"{value:.4g}" if math.isfinite(value) and (value == 0 or 1e-3 <= abs(value) < 1e6) else f"{value:.3e}"
        )
    if isinstance(value, (dict, list)):
        if isinstance(value, list) and all(isinstance(v, (int, float, str)) for v in value):
            return escape(", ".join(str(v) for v in value))
        if isinstance(value, dict) and value and all(isinstance(v, (int, float, str, bool)) for v in value.values()):
            return _kv_table(value)
        return f"<pre>{escape(json.dumps(value, indent=1, default=str))}</pre>"
    return escape(str(value))


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
