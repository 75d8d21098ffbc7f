"""The comparison table: one line per row, the fastest faithful row per model marked."""

from __future__ import annotations

from typing import Any

from deploybench.results import CellKey, Results, Row, Status

# p90/p99 beside p50 always (as trtexec and benchmark_app print them) rather than behind a
# --columns option: the tail is what a deployment budget is set against, and a fixed set of
# columns keeps tables of different runs comparable line for line.
COLUMNS = [
    "",
    "model",
    "format",
    "runtime",
    "device",
    "precision",
    "batch",
    "threads",
    "streams/req",
    "parity",
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
    "status",
]
FASTEST_MARK = "*"
FOOTNOTE = f"{FASTEST_MARK} fastest row that passed parity, per model and batch size"
DEFAULT_REFERENCE = "pytorch-fp32"


def _precision(row: Row) -> str:
    used = row.precision_used
    return row.precision if not used or used == row.precision else f"{row.precision}->{used}"


def _parity(row: Row) -> str:
    parity = row.parity
    if not parity:
        return "-"
    text = f"{parity.verdict} ({parity.key_figure()})"
    accuracy = parity.accuracy
    if accuracy:
        text += f", acc {accuracy['top1']:.1%} ({accuracy['delta_top1']:+.1%})"
    return text


def _parallelism(row: Row) -> str:
    """``streams/requests`` where a runtime keeps more than one in flight (OpenVINO throughput mode)."""
    streams = int(row.runtime_info.get("streams") or 1)
    requests = int(row.runtime_info.get("infer_requests") or 1)
    return f"{streams}/{requests}" if max(streams, requests) > 1 else "-"


def footnotes(results: Results) -> list[str]:
    """The fastest-row mark, each model's size (parameters, MACs, input), any model whose parity
    reference is not PyTorch FP32, the weights and parity inputs of each model, and why any row's
    parity did not pass."""
    references: dict[str, str] = {}
    for row in results.rows:
        if row.parity_reference and row.parity_reference != DEFAULT_REFERENCE:
            references.setdefault(row.model, row.parity_reference)
    inputs = parity_inputs_line(results)
    facts = [
        f"{name}: {model.describe()}"
        for name, model in results.models.items()
        if any(row.model == name for row in results.rows)
    ]
    return [
        FOOTNOTE,
        *facts,
        *(f"parity of {model} is against {reference}" for model, reference in references.items()),
        *weights_used(results),
        *([f"parity inputs: {inputs}"] if inputs else []),
        *(f"parity: {note}" for note in parity_notes(results)),
    ]


def eager_baseline(results: Results) -> dict[tuple[str, str, int], float]:
    """(model, device, batch) -> ms/image of the PyTorch eager FP32 row."""
    return {
        (r.model, r.device, r.batch): r.ms_per_image
        for r in results.rows
        if r.runtime == "torch" and r.precision == "fp32" and r.status == Status.OK and r.ms_per_image
    }


def fastest_faithful(results: Results) -> set[CellKey]:
    """Per model and batch size, the key of the fastest row that ran and passed parity."""
    best: dict[tuple[str, int], tuple[float, Row]] = {}
    for row in results.rows:
        if row.status != Status.OK or row.parity_verdict != "pass" or not row.ms_per_image:
            continue
        group = (row.model, row.batch)
        if group not in best or row.ms_per_image < best[group][0]:
            best[group] = (row.ms_per_image, row)
    return {row.key for _, row in best.values()}


def format_number(value: float | None, digits: int) -> str:
    """``1234.5678, 1`` -> ``1,234.6``; None -> ``-``."""
    return "-" if value is None or value != value else f"{value:,.{digits}f}"  # None and NaN: unknown


# Row warnings by the word they start with or contain -> the note the status column shows.
STATUS_NOTES = {
    "noisy": "noisy",
    "throttled": "throttled",
    "clocked down": "throttled",
    "host- or launch-bound": "host-bound",
}


def status_notes(row: Row) -> list[str]:
    """Short notes for an ok row's status, one per warning: noisy, throttled, host-bound, or the
    warning's headline ("likely misconfiguration: 3.4x slower than eager"); the full text is in
    its warnings."""
    notes = []
    for warning in row.warnings:
        known = [note for key, note in STATUS_NOTES.items() if key in warning]
        notes.append(known[0] if known else warning.split(" (", 1)[0])
    return list(dict.fromkeys(notes))


def table_rows(results: Results) -> list[list[Any]]:
    baseline = eager_baseline(results)
    fastest = fastest_faithful(results)
    lines = []
    for row in results.rows:
        base = baseline.get((row.model, row.device, row.batch))
        speedup = f"{base / row.ms_per_image:.2f}x" if base and row.ms_per_image else "-"
        notes = status_notes(row)
        status = row.status if row.status != Status.OK else ("ok" + (f" ({'; '.join(notes)})" if notes else ""))
        if row.status != Status.OK and row.message:
            status = f"{row.status}: {row.message[:60]}"
        stats = row.stats
        lines.append(
            [
                FASTEST_MARK if row.key in fastest else "",
                row.model,
                row.format,
                row.runtime,
                row.device,
                _precision(row),
                row.batch,
                row.threads or "-",
                _parallelism(row),
                _parity(row),
                *(format_number(getattr(stats, key) if stats else None, 3) for key in ("median", "p90", "p99")),
                format_number(row.ms_per_image, 3),
                format_number(row.throughput, 1),
                format_number(row.gflops_per_s, 1),
                format_number(row.peak_rss_mb, 0),
                format_number(row.peak_device_mb, 0),
                format_number(row.artifact_mb, 2),
                speedup,
                status,
            ]
        )
    return lines


def parity_notes(results: Results) -> list[str]:
    """One line per row whose parity did not pass: the row and the first reason."""
    notes = []
    for row in results.rows:
        if row.parity and row.parity.verdict != "pass" and row.parity.reasons:
            reasons = row.parity.reasons
            more = f" (+{len(reasons) - 1} more in the JSON)" if len(reasons) > 1 else ""
            notes.append(
                f"{row.model} {row.runtime} {row.precision} b{row.batch}: {row.parity_verdict}: {reasons[0]}{more}"
            )
    return notes


def parity_inputs_line(results: Results) -> str:
    """What the parity inputs were, once per model."""
    seen: dict[str, str] = {}
    for row in results.rows:
        if row.parity and row.parity.inputs:
            seen.setdefault(row.model, row.parity.inputs)
    return "; ".join(f"{model}: {inputs}" for model, inputs in seen.items())


def weights_used(results: Results) -> list[str]:
    """One line per model: the weights its rows ran with (random, pretrained, a checkpoint, full or partial)."""
    seen: dict[str, str] = {}
    for row in results.rows:
        if row.weights:
            seen.setdefault(row.model, row.weights)
    return [f"weights of {model}: {weights}" for model, weights in seen.items()]


def render_table(results: Results, fmt: str = "simple") -> str:
    from tabulate import tabulate

    text = tabulate(table_rows(results), headers=COLUMNS, tablefmt=fmt, disable_numparse=True)
    return "\n".join([text, *footnotes(results)])


def render_csv(results: Results) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "model",
            "format",
            "runtime",
            "device",
            "precision",
            "precision_used",
            "batch",
            "status",
            "message",
            "parity",
            "parity_reference",
            "p50_ms",
            "mean_ms",
            "p90_ms",
            "p99_ms",
            "cv",
            "ms_per_image",
            "images_per_s",
            "gflops_per_s",
            "first_inference_ms",
            "load_s",
            "peak_rss_mb",
            "rss_growth_mb",
            "peak_device_mb",
            "artifact_mb",
            "threads",
            "timed_region",
            "weights",
            "parameters",
            "gmacs",
            "achieved_tflops",
            "share_of_peak",
            "energy_per_image_mj",
        ]
    )
    for r in results.rows:
        stats = r.stats
        facts = results.models.get(r.model)
        macs = facts.macs if facts else None
        writer.writerow(
            [
                r.model,
                r.format,
                r.runtime,
                r.device,
                r.precision,
                r.precision_used,
                r.batch,
                r.status,
                r.message,
                r.parity_verdict,
                r.parity_reference,
                *((getattr(stats, key) if stats else None) for key in ("median", "mean", "p90", "p99", "cv")),
                r.ms_per_image,
                r.throughput,
                r.gflops_per_s,
                r.first_inference_ms,
                r.load_seconds,
                r.peak_rss_mb,
                round(r.memory.rss_growth_mb, 1) if r.memory else None,
                r.peak_device_mb,
                r.artifact_mb,
                r.threads,
                r.timed_region,
                r.weights,
                facts.parameters if facts else None,
                round(macs / 1e9, 3) if macs else None,
                (r.utilization or {}).get("achieved_tflops"),
                (r.utilization or {}).get("share_of_peak"),
                r.runtime_info.get("nvml", {}).get("energy_per_image_mj"),
            ]
        )
    return buffer.getvalue()


def _markdown_cell(value: Any) -> Any:
    """A cell that cannot end its Markdown table cell early (messages may contain '|')."""
    return value.replace("|", "\\|") if isinstance(value, str) else value


def render_markdown(results: Results) -> str:
    env = results.environment
    cpu = env.get("cpu", {})
    head = [
        f"# deploybench results ({results.created})",
        "",
        f"Machine: {cpu.get('model', '?')}, {cpu.get('usable_cores', '?')} cores; "
        f"GPUs: {', '.join(g['name'] for g in env.get('gpus', [])) or 'none'}.",
        "",
    ]
    from tabulate import tabulate

    rows = [[_markdown_cell(cell) for cell in line] for line in table_rows(results)]
    table = tabulate(rows, headers=COLUMNS, tablefmt="github", disable_numparse=True)
    return "\n".join(head) + f"{table}\n\n" + "\n\n".join(_markdown_cell(f) for f in footnotes(results)) + "\n"
