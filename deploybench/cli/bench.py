"""``deploybench bench`` (one model, one runtime, full statistics) and ``deploybench compare``."""

from __future__ import annotations

import contextlib
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from deploybench.cli.fleet import record_options, record_run
from deploybench.cli.options import cache_option, split_list, weights_options
from deploybench.cli.streams import stdout_to_stderr


def _progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


def _terminate_as_interrupt() -> None:
    """SIGTERM ends a sweep like Ctrl-C: the current cell stops, finished rows stay saved."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def common_run_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--batch", "batch", default=None, help="Batch sizes, e.g. 1,8,32, or 'auto'."),
            click.option("--device", default=None, help="cpu or cuda (default: the target's)."),
            click.option(
                "--threads", type=int, help="CPU threads for every runtime, 1 or more (default: the physical cores)."
            ),
            click.option("--quick", is_flag=True, help="Short warm-up and timed window (smoke runs)."),
            click.option("--min-iters", type=int, help="Timed iterations at least (default 10)."),
            click.option(
                "--min-seconds",
                type=float,
                help="Timed seconds at least (default 2); then on until the "
                "median's 95 % interval is within ±2 % (--max-seconds at most).",
            ),
            click.option(
                "--max-seconds",
                type=click.FloatRange(min=0, min_open=True),
                help="Timed seconds at most (default 10; never under --min-seconds).",
            ),
            click.option(
                "--dynamic-batch",
                is_flag=True,
                help="Time the dynamic-batch artifact instead of one built or compiled for each batch size.",
            ),
            click.option(
                "--isolate",
                "worker_per",
                type=click.Choice(["artifact", "cell"]),
                default="artifact",
                show_default=True,
                help="One worker process per artifact (all its batch sizes) or per cell.",
            ),
            click.option("--no-isolate", is_flag=True, help="Run cells in this process (debugging)."),
            click.option("--quiet", is_flag=True, help="Progress as plain lines, not a live display."),
            click.option("--timeout", type=float, default=600, show_default=True, help="Seconds per cell."),
            click.option(
                "--tolerance",
                multiple=True,
                help="Override a parity tolerance, e.g. max_error=1e-2 (keys: see README).",
            ),
            click.option(
                "--images", type=click.Path(file_okay=False), help="Real images for parity instead of seeded noise."
            ),
            click.option(
                "--dataset",
                type=click.Path(file_okay=False),
                help="ImageFolder dataset: adds top-1/top-5 accuracy per row.",
            ),
            click.option("--mode", default="auto", show_default=True, help="OpenVINO hint: auto, latency, throughput."),
            click.option("--compile-mode", default="default", show_default=True, help="torch.compile mode."),
            click.option(
                "--ort-provider",
                type=click.Choice(["cuda", "tensorrt"]),
                default=None,
                help="ONNX Runtime's execution provider on --device cuda (default: cuda).",
            ),
            click.option(
                "--cuda-graphs",
                is_flag=True,
                help="ONNX Runtime on CUDA: capture each cell once as a CUDA graph and replay it.",
            ),
        ]
    ):
        func = option(func)
    return func


def build_config(
    models: tuple[str, ...],
    runtimes: tuple[str, ...] | None,
    formats: tuple[str, ...] | None,
    precisions: tuple[str, ...] | None,
    target: Any,
    batch: str | None,
    device: str | None,
    threads: int | None,
    quick: bool,
    min_iters: int | None,
    min_seconds: float | None,
    max_seconds: float | None,
    no_isolate: bool,
    worker_per: str,
    timeout: float,
    tolerance: tuple[str, ...],
    images: str | None,
    dataset: str | None,
    mode: str,
    compile_mode: str,
    weights: dict[str, Any],
    dynamic_batch: bool = False,
    ort_provider: str | None = None,
    cuda_graphs: bool = False,
    **extra: Any,
) -> Any:
    from deploybench.compare import parse_tolerance_overrides
    from deploybench.harness import MeasurePolicy
    from deploybench.runtimes.base import RuntimeOptions
    from deploybench.sweep import SweepConfig, parse_batches

    policy = MeasurePolicy.quick() if quick else MeasurePolicy()
    if min_iters is not None:
        policy = replace(policy, min_iters=min_iters)
    if min_seconds is not None:
        policy = replace(policy, min_seconds=min_seconds)
    if max_seconds is not None:
        policy = replace(policy, max_seconds=max_seconds)
    if policy.max_seconds < policy.min_seconds:  # the cap never cuts the floor short
        policy = replace(policy, max_seconds=policy.min_seconds)
    return SweepConfig(
        models=models,
        runtimes=runtimes or target.runtimes,
        formats=formats,
        precisions=precisions or target.precisions,
        batches=parse_batches(batch) if batch else target.batches,
        device=device or target.device,
        threads=threads if threads is not None else target.threads,
        policy=policy,
        isolate=not no_isolate,
        worker_per=worker_per,
        timeout_s=timeout,
        images_dir=images,
        dataset_dir=dataset,
        tolerance=parse_tolerance_overrides(tolerance),
        runtime_options=RuntimeOptions(
            mode=mode, compile_mode=compile_mode, provider=ort_provider, cuda_graphs=cuda_graphs
        ),
        dynamic_batch=dynamic_batch,
        **weights,
        **extra,
    )  # pretrained, checkpoint, trust_checkpoint, checkpoint_partial, data_init


def execute(
    config: Any, cache_dir: str | None, out_dir: Path | None, resume: Path | None, argv: list[str], quiet: bool = False
) -> Any:
    """Run the sweep; rows are saved as they finish when there is an output folder."""
    from deploybench.cache import ArtifactCache
    from deploybench.env import fingerprint
    from deploybench.harness import MeasurePolicy
    from deploybench.results import Results
    from deploybench.sweep import Sweep

    results_path = None
    policy = config.policy
    results = Results(
        config={
            "argv": argv,
            "models": list(config.models),
            "runtimes": list(config.runtimes),
            "precisions": list(config.precisions),
            "batches": config.batches,
            "device": config.device,
            "threads": config.threads,
            "shard": list(config.shard),
            "weights": {
                "pretrained": config.pretrained,
                "checkpoint": config.checkpoint,
                "checkpoint_partial": config.checkpoint_partial,
            },
            # Runs measured under different policies are not comparable (regress, history).
            "policy": {
                "quick": policy == MeasurePolicy.quick(),
                "min_iters": policy.min_iters,
                "min_seconds": policy.min_seconds,
                "warmup_iters": policy.warmup_iters,
                "warmup_seconds": policy.warmup_seconds,
                "ci_target": policy.ci_target,
                "max_seconds": policy.max_seconds,
            },
        },
        environment=fingerprint(),
    )
    cache = ArtifactCache(Path(cache_dir) if cache_dir else None)
    cache.ensure_writable()  # refuse now, not after the first cells have run
    if resume is not None:
        results_path = resume / "results.json"
        if results_path.is_file():
            previous = Results.load(results_path)
            previous.config, previous.environment = results.config, results.environment
            results = previous
            _progress(f"resuming: {len(results.rows)} rows already in {results_path}")
    elif out_dir is not None:
        results_path = out_dir / "results.json"
    from deploybench.progress import Progress

    tracker = Progress(live=False if quiet else None)  # live on a terminal, plain lines in a log
    sweep = Sweep(
        config,
        cache,
        results,
        results_path,
        work_dir=(out_dir or resume) / "references" if (out_dir or resume) else None,
        progress=tracker.note,
        tracker=tracker,
    )
    _terminate_as_interrupt()
    from deploybench.sweep import summarise_skips

    with stdout_to_stderr():  # library prints and progress bars must not land in the table's stream
        try:
            sweep.run()
        finally:
            tracker.close()
    for line in summarise_skips(sweep.skipped):
        _progress(f"skipped {line}")
    return sweep


def write_outputs(results: Any, out_dir: Path | None, html: str | None) -> None:
    from deploybench.artifact import write_text_atomic
    from deploybench.report.table import render_csv, render_markdown

    if out_dir is not None:
        results.save(out_dir / "results.json")
        write_text_atomic(out_dir / "results.csv", render_csv(results))
        write_text_atomic(out_dir / "results.md", render_markdown(results))
        click.echo(f"results: {out_dir / 'results.json'} (+ .csv, .md)", err=True)
    if html:
        from deploybench.report.html import render_html

        write_text_atomic(Path(html), render_html(results))
        click.echo(f"html report: {html}", err=True)


@click.command("compare")
@click.option("--models", required=True, help="Models, comma-separated (aliases, timm names, yolo names, files).")
@click.option("--runtimes", help="Runtimes, comma-separated (default: the target's).")
@click.option("--formats", help="Only these formats (ts, onnx, ov, trt, aoti, torch).")
@click.option("--precisions", help="Precisions, comma-separated (default: the target's, e.g. fp32,int8).")
@click.option("--target", default="cpu", show_default=True, help="cpu, a100, h100, edge or auto.")
@click.option("--target-file", type=click.Path(dir_okay=False), help="A target TOML file of your own.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder for results.json/.csv/.md.")
@click.option("--html", type=click.Path(dir_okay=False), help="Also write a self-contained HTML report.")
@click.option("--resume", type=click.Path(file_okay=False), help="Finish the missing cells of an earlier --out folder.")
@click.option(
    "--retry-failed", is_flag=True, help="With --resume: also run again cells that crashed, timed out or failed."
)
@click.option(
    "--shard",
    default="1/1",
    show_default=True,
    help="Run slice I of N of the cells (I/N); auto reads Slurm's array task, auto/N a Kubernetes Indexed Job's.",
)
@click.option("--allow-mismatch", is_flag=True, help="Exit 0 even when a parity verdict fails.")
@click.option(
    "--strict-parity", is_flag=True, help="Exit 1 when a parity verdict is inconclusive, not only when one fails."
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Exit 0 even when no cell could run (every one skipped); the default is exit 2, saying why.",
)
@click.option("--calib-data", type=click.Path(file_okay=False), help="Images for INT8 calibration.")
@click.option(
    "--triage", "triage_failures", is_flag=True, help="Triage rows that fail parity: which layer, what to keep in FP32."
)
@record_options()
@common_run_options
@cache_option
@weights_options
def compare_command(
    models: str,
    runtimes: str | None,
    formats: str | None,
    precisions: str | None,
    target: str,
    target_file: str | None,
    out_dir: str | None,
    html: str | None,
    resume: str | None,
    retry_failed: bool,
    shard: str,
    allow_mismatch: bool,
    strict_parity: bool,
    allow_empty: bool,
    calib_data: str | None,
    triage_failures: bool,
    history_path: str | None,
    cache_dir: str | None,
    weights: dict[str, Any],
    **run: Any,
) -> int:
    """Export, run and check every model x format x runtime; print the comparison table."""
    from deploybench.exporters.base import ExportOptions
    from deploybench.output_lock import exclusive_output
    from deploybench.report.table import render_table
    from deploybench.targets import load_target, parse_shard

    tgt = load_target(target, target_file)
    quiet = run.pop("quiet")
    config = build_config(
        split_list(models) or (),
        split_list(runtimes),
        split_list(formats),
        split_list(precisions),
        tgt,
        weights=weights,
        shard=parse_shard(shard),
        export=ExportOptions(calib_data=calib_data),
        retry_failed=retry_failed,
        sample=tgt.sample,
        **run,
    )
    out = Path(resume or out_dir) if (resume or out_dir) else None
    click.echo(
        f"target {tgt.name}: {config.device}, runtimes {', '.join(config.runtimes)}, "
        f"precisions {', '.join(config.precisions)}, batches {config.batches}",
        err=True,
    )
    # One run per output folder: a second one is refused instead of overwriting this one's rows.
    with exclusive_output(out, "--resume" if resume else "--out") if out else contextlib.nullcontext():
        sweep = execute(config, cache_dir, out, Path(resume) if resume else None, sys.argv, quiet)
        if not allow_empty and (why := sweep.nothing_ran()):
            from deploybench.errors import UnsupportedError

            raise UnsupportedError(f"nothing to run: {why}; pass --allow-empty to exit 0 with an empty table")
        results = sweep.results
        if triage_failures:
            from deploybench.triage.failing_rows import triage_failing_rows

            triage_failing_rows(results, config, sweep.cache, _progress)
        click.echo(render_table(results))
        if triage_failures:
            _echo_triages(results)
        write_outputs(results, out, html)
    if history_path is not None:
        record_run(results, history_path)
    return parity_exit_code(results, allow_mismatch, strict_parity) or (
        1 if any(r.status != "ok" for r in results.rows) else 0
    )


def parity_exit_code(results: Any, allow_mismatch: bool, strict_parity: bool) -> int:
    """1 when a row failed parity (or, with --strict-parity, was inconclusive), unless --allow-mismatch."""
    failed = [r for r in results.rows if r.parity_verdict == "fail"]
    unsure = [r for r in results.rows if r.parity_verdict == "inconclusive"] if strict_parity else []
    if (failed or unsure) and not allow_mismatch:
        what = " and ".join(
            part
            for part in (
                f"{len(failed)} rows failed parity" if failed else "",
                f"{len(unsure)} rows had inconclusive parity (--strict-parity)" if unsure else "",
            )
            if part
        )
        click.echo(f"{what} (pass --allow-mismatch to exit 0 anyway)", err=True)
        return 1
    return 0


def _echo_triages(results: Any) -> None:
    from deploybench.triage.render import summary
    from deploybench.triage.report import Triage

    shown = set()
    for row in results.rows:
        if row.triage and (key := (row.model, row.format, row.runtime, row.precision)) not in shown:
            shown.add(key)
            click.echo("\n" + summary(Triage.from_dict(row.triage)))


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
    from deploybench import registry
    from deploybench.targets import load_target

    run["batch"] = run["batch"] or "1"
    quiet = run.pop("quiet")
    devices = registry.runtimes.get(runtime).devices
    run["device"] = run["device"] or ("cpu" if "cpu" in devices else devices[0])  # tensorrt: cuda
    config = build_config(
        (model,), (runtime,), (fmt,) if fmt else None, (precision,), load_target("cpu", None), weights=weights, **run
    )
    sweep = execute(config, cache_dir, None, None, sys.argv, quiet)
    if why := sweep.nothing_ran():
        from deploybench.errors import UnsupportedError

        raise UnsupportedError(f"nothing to run: {why}")
    results = sweep.results
    click.echo(render_stats(results))
    if json_file:
        results.save(Path(json_file))
    return 0 if all(r.status == "ok" for r in results.rows) else 1


def render_stats(results: Any) -> str:
    from tabulate import tabulate

    lines, notes = [], []
    for r in results.rows:
        if r.status != "ok":
            lines.append([r.runtime, r.batch, r.status, r.message] + [""] * 13)
            continue
        s = r.stats
        lines.append(
            [
                r.runtime,
                r.batch,
                r.precision_used or r.precision,
                r.threads,
                *(f"{s[k]:.3f}" for k in ("min", "mean", "median", "p90", "p95", "p99", "max", "std")),
                f"{s['cv']:.1%}",
                f"{r.ms_per_image:.3f}",
                f"{r.throughput:.1f}",
                f"{r.first_inference_ms:.1f}",
                f"{r.memory['peak_rss_mb']:.0f} (+{r.memory['rss_growth_mb']:.0f})",
                r.parity_verdict or "-",
            ]
        )
        notes.append(
            f"b{r.batch}: {s['n']} calls in {r.window_seconds:.2f} s ({r.stop_reason or 'stopped'}); "
            f"median 95 % interval {_interval(r)}; {r.batch_shape or 'unknown'} batch shape; "
            f"timed region: {r.timed_region}"
        )
        if r.parity_reference:
            notes.append(f"b{r.batch}: parity against {r.parity_reference}")
        if r.memory.get("rss_source"):
            notes.append(
                f"b{r.batch}: host memory from the {r.memory['rss_source']}; device memory from "
                f"{r.memory.get('device_source') or 'nothing (no NVML-visible GPU)'}"
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
    return f"{low:.3f}–{high:.3f} ms (±{(high - low) / 2 / row.stats['median']:.1%})"


COMMANDS = [compare_command, bench_command]
