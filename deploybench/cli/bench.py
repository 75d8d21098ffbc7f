"""``deploybench bench MODEL --runtime R``: one model in one runtime, full statistics."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from deploybench.cli.options import cache_option, common_run_options, run_settings, weights_options
from deploybench.results import Results, Status


@click.command("bench")
@click.argument("model")
@click.option(
    "--runtime",
    required=True,
    help="One runtime (torch, torch-compile, torchscript, onnxruntime, openvino, aoti, tensorrt).",
)
@click.option("--format", "fmt", help="Artifact format (default: the one the runtime loads).")
@click.option("--precision", default="fp32", show_default=True)
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Write the results document here.")
@common_run_options
@cache_option
@weights_options
def bench_command(
    model: str,
    runtime: str,
    fmt: str | None,
    precision: str,
    json_file: str | None,
    cache_dir: str | None,
    weights: dict[str, Any],
    **run: Any,
) -> int:
    """Time MODEL in one RUNTIME: full statistics, memory and the timed region."""
    from deploybench import api

    settings = run_settings(run, weights)
    settings["batches"] = settings["batches"] or "1"
    results = api.bench(model, runtime, format=fmt, precision=precision, cache=cache_dir, argv=sys.argv, **settings)
    click.echo(render_stats(results))
    if json_file:
        results.save(Path(json_file))
    return 0 if all(r.status == Status.OK for r in results.rows) else 1


def render_stats(results: Results) -> str:
    from tabulate import tabulate

    lines, notes = [], []
    for r in results.rows:
        s, memory = r.stats, r.memory
        if r.status != Status.OK or s is None:
            lines.append([r.runtime, r.batch, r.status, r.message] + [""] * 13)
            continue
        lines.append(
            [
                r.runtime,
                r.batch,
                r.precision_used or r.precision,
                r.threads,
                *(f"{getattr(s, k):.3f}" for k in ("min", "mean", "median", "p90", "p95", "p99", "max", "std")),
                f"{s.cv:.1%}",
                f"{r.ms_per_image:.3f}",
                f"{r.throughput:.1f}",
                f"{r.first_inference_ms:.1f}",
                f"{memory.peak_rss_mb:.0f} (+{memory.rss_growth_mb:.0f})" if memory else "-",
                r.parity_verdict or "-",
            ]
        )
        notes.append(
            f"b{r.batch}: {s.n} calls in {r.window_seconds:.2f} s ({r.stop_reason or 'stopped'}); "
            f"median 95 % interval {_interval(r)}; {r.batch_shape or 'unknown'} batch shape; "
            f"timed region: {r.timed_region}"
        )
        if r.parity_reference:
            notes.append(f"b{r.batch}: parity against {r.parity_reference}")
        if memory and memory.rss_source:
            notes.append(
                f"b{r.batch}: host memory from the {memory.rss_source}; device memory from "
                f"{memory.device_source or 'nothing (no NVML-visible GPU)'}"
            )
        if r.runtime_info:
            notes.append(f"b{r.batch}: runtime used " + ", ".join(f"{k}={v}" for k, v in r.runtime_info.items()))
    headers = [
        "runtime",
        "batch",
        "precision",
        "threads",
        "min",
        "mean",
        "p50",
        "p90",
        "p95",
        "p99",
        "max",
        "std",
        "cv",
        "ms/img",
        "img/s",
        "first ms",
        "host MB (growth)",
        "parity",
    ]
    return tabulate(lines, headers=headers, disable_numparse=True) + "\n" + "\n".join(notes)


def _interval(row: Any) -> str:
    if not row.median_ci_ms:
        return "not recorded"
    low, high = row.median_ci_ms
    return f"{low:.3f}–{high:.3f} ms (±{(high - low) / 2 / row.stats.median:.1%})"


COMMANDS = [bench_command]
