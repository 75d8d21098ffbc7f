"""The comparison table: one line per row, the fastest faithful row per model marked."""

from __future__ import annotations

from typing import Any

from deploybench.results import Results, Row

COLUMNS = ["", "model", "format", "runtime", "device", "precision", "batch", "parity", "p50 ms", "ms/img",
           "img/s", "host MB", "dev MB", "artifact MB", "vs eager", "status"]
FASTEST_MARK = "*"
FOOTNOTE = f"{FASTEST_MARK} fastest row that passed parity, per model and batch size"


def _precision(row: Row) -> str:
    used = row.precision_used
    return row.precision if not used or used == row.precision else f"{row.precision}->{used}"


def _parity(row: Row) -> str:
    if not row.parity:
        return "-"
    from deploybench.compare import Parity

    parity = Parity.from_dict(row.parity)
    text = f"{parity.verdict} ({parity.key_figure()})"
    accuracy = row.parity.get("accuracy")
    if accuracy:
        text += f", acc {accuracy['top1']:.1%} ({accuracy['delta_top1']:+.1%})"
    return text


def eager_baseline(results: Results) -> dict[tuple[str, str, int], float]:
    """(model, device, batch) -> ms/image of the PyTorch eager FP32 row."""
    return {(r.model, r.device, r.batch): r.ms_per_image for r in results.rows
            if r.runtime == "torch" and r.precision == "fp32" and r.status == "ok" and r.ms_per_image}


def fastest_faithful(results: Results) -> set[str]:
    """Per model and batch size, the key of the fastest row that ran and passed parity."""
    best: dict[tuple[str, int], Row] = {}
    for row in results.rows:
        if row.status != "ok" or row.parity_verdict != "pass" or not row.ms_per_image:
            continue
        group = (row.model, row.batch)
        if group not in best or row.ms_per_image < best[group].ms_per_image:  # type: ignore[operator]
            best[group] = row
    return {row.key for row in best.values()}


def format_number(value: float | None, digits: int) -> str:
    """``1234.5678, 1`` -> ``1,234.6``; None -> ``-``."""
    return "-" if value is None else f"{value:,.{digits}f}"


# Row warnings by the word they start with or contain -> the note the status column shows.
STATUS_NOTES = {"noisy": "noisy", "throttled": "throttled", "clocked down": "throttled",
                "host- or launch-bound": "host-bound"}


def status_notes(row: Row) -> list[str]:
    """Short notes for an ok row's status: noisy, throttled, host-bound (the full text is in its warnings)."""
    notes = [note for key, note in STATUS_NOTES.items() if any(key in warning for warning in row.warnings)]
    return list(dict.fromkeys(notes))


def table_rows(results: Results) -> list[list[Any]]:
    baseline = eager_baseline(results)
    fastest = fastest_faithful(results)
    lines = []
    for row in results.rows:
        base = baseline.get((row.model, row.device, row.batch))
        speedup = f"{base / row.ms_per_image:.2f}x" if base and row.ms_per_image else "-"
        status = row.status if row.status != "ok" else "ok" + "".join(f" ({note})" for note in status_notes(row))
        if row.status != "ok" and row.message:
            status = f"{row.status}: {row.message[:60]}"
        lines.append([FASTEST_MARK if row.key in fastest else "", row.model, row.format, row.runtime, row.device,
                      _precision(row), row.batch, _parity(row), format_number((row.stats or {}).get("median"), 3),
                      format_number(row.ms_per_image, 3), format_number(row.throughput, 1),
                      format_number(row.memory.get("peak_rss_mb"), 0),
                      format_number(row.memory.get("peak_device_mb"), 0),
                      format_number(row.artifact.get("size_mb"), 2), speedup, status])
    return lines


def render_table(results: Results, fmt: str = "simple") -> str:
    from tabulate import tabulate

    text = tabulate(table_rows(results), headers=COLUMNS, tablefmt=fmt, disable_numparse=True)
    return f"{text}\n{FOOTNOTE}"


def render_csv(results: Results) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["model", "format", "runtime", "device", "precision", "precision_used", "batch", "status", "message",
                     "parity", "p50_ms", "mean_ms", "p99_ms", "cv", "ms_per_image", "images_per_s", "first_inference_ms",
                     "load_s", "peak_rss_mb", "rss_growth_mb", "peak_device_mb", "artifact_mb", "threads", "timed_region",
                     "achieved_tflops", "share_of_peak", "energy_per_image_mj"])
    for r in results.rows:
        stats = r.stats or {}
        writer.writerow([r.model, r.format, r.runtime, r.device, r.precision, r.precision_used, r.batch, r.status,
                         r.message, r.parity_verdict, stats.get("median"), stats.get("mean"), stats.get("p99"),
                         stats.get("cv"), r.ms_per_image, r.throughput, r.first_inference_ms, r.load_seconds,
                         r.memory.get("peak_rss_mb"), r.memory.get("rss_growth_mb"), r.memory.get("peak_device_mb"),
                         r.artifact.get("size_mb"), r.threads, r.timed_region,
                         (r.utilization or {}).get("achieved_tflops"), (r.utilization or {}).get("share_of_peak"),
                         r.runtime_info.get("nvml", {}).get("energy_per_image_mj")])
    return buffer.getvalue()


def _markdown_cell(value: Any) -> Any:
    """A cell that cannot end its Markdown table cell early (messages may contain '|')."""
    return value.replace("|", "\\|") if isinstance(value, str) else value


def render_markdown(results: Results) -> str:
    env = results.environment
    cpu = env.get("cpu", {})
    head = [f"# deploybench results ({results.created})", "",
            f"Machine: {cpu.get('model', '?')}, {cpu.get('usable_cores', '?')} cores; "
            f"GPUs: {', '.join(g['name'] for g in env.get('gpus', [])) or 'none'}.", ""]
    from tabulate import tabulate

    rows = [[_markdown_cell(cell) for cell in line] for line in table_rows(results)]
    table = tabulate(rows, headers=COLUMNS, tablefmt="github", disable_numparse=True)
    return "\n".join(head) + f"{table}\n\n{FOOTNOTE}\n"
