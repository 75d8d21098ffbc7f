"""``deploybench compare --models A,B``: every model x format x runtime, one table."""

from __future__ import annotations

import sys
from typing import Any

import click

from deploybench.cli.fleet import record_options
from deploybench.cli.options import cache_option, common_run_options, run_settings, split_list, weights_options
from deploybench.results import Status


def _progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


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
    from deploybench import api
    from deploybench.targets import load_target, parse_shard

    tgt = load_target(target, target_file)
    settings = run_settings(run, weights)
    results = api.compare(
        split_list(models) or (),
        target=tgt,
        runtimes=split_list(runtimes),
        formats=split_list(formats),
        precisions=split_list(precisions),
        out=resume or out_dir,
        resume=resume is not None,
        html=html,
        cache=cache_dir,
        allow_empty=allow_empty,
        triage=triage_failures,
        record=history_path,
        shard=parse_shard(shard),
        retry_failed=retry_failed,
        calib_data=calib_data,
        progress=_progress,
        on_results=lambda measured: _show(measured, triage_failures),
        argv=sys.argv,
        **settings,
    )
    return parity_exit_code(results, allow_mismatch, strict_parity) or (
        1 if any(r.status != Status.OK for r in results.rows) else 0
    )


def _show(results: Any, triage_failures: bool) -> None:
    """The table (and triages) on stdout, before the reports are written."""
    from deploybench.report.table import render_table

    click.echo(render_table(results))
    if triage_failures:
        _echo_triages(results)


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


COMMANDS = [compare_command]
