"""Fleet commands: ``regress`` (the regression gate), ``history`` (trends) and ``merge`` (shards)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from deploybench.regress import DEFAULT_MAX_MEMORY_GROWTH, DEFAULT_MAX_SLOWDOWN, DEFAULT_NOISE_K, format_percent

DEFAULT_DATABASE = "default: $DEPLOYBENCH_HISTORY, else history.sqlite in the user's data directory"


def history_path_option(help_text: str) -> Any:
    """``--history PATH`` (always with a value): the database a command reads or writes."""
    return click.option(
        "--history",
        "history_path",
        type=click.Path(dir_okay=False),
        metavar="PATH",
        help=f"{help_text} ({DEFAULT_DATABASE}).",
    )


def record_options() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """compare's ``--record`` and ``--history PATH``, handed to the command as one ``history_path``.

    ``history_path`` is None (do not record), "" (record in the default database) or a path;
    ``--history PATH`` alone implies ``--record``. ``deploybench.api.compare`` refuses to
    record one shard of a sweep before anything runs.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_history(*args: Any, record: bool, history_file: str | None, **kwargs: Any) -> Any:
            history_path = (history_file or "") if record or history_file else None
            return command(*args, history_path=history_path, **kwargs)

        with_history = click.option(
            "--history",
            "history_file",
            type=click.Path(dir_okay=False),
            metavar="PATH",
            help="Record this run in this history database (implies --record).",
        )(with_history)
        return click.option("--record", is_flag=True, help=f"Record this run in the history ({DEFAULT_DATABASE}).")(
            with_history
        )

    return decorate


def _open_history(path: str | None, read_only: bool = False) -> Any:
    from deploybench.history import History

    return History(Path(path) if path else None, read_only=read_only)


@click.command("regress")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False), metavar="[BASELINE.json] CURRENT.json")
@click.option(
    "--max-slowdown",
    default=format_percent(DEFAULT_MAX_SLOWDOWN),
    show_default=True,
    help="Largest median slowdown that passes, as 5% or 0.05.",
)
@click.option(
    "--max-memory-growth",
    default=format_percent(DEFAULT_MAX_MEMORY_GROWTH),
    show_default=True,
    help="Largest growth of peak memory that passes.",
)
@click.option(
    "--noise-k",
    type=float,
    default=DEFAULT_NOISE_K,
    show_default=True,
    help="A slowdown must also exceed K times the runs' combined spread.",
)
@click.option(
    "--baseline-history",
    "baseline_runs",
    type=click.IntRange(min=1),
    help="Baseline = the last N comparable earlier runs in the history (median of medians per cell).",
)
@history_path_option("History database for --baseline-history, opened read-only")
@click.option("--force", is_flag=True, help="Compare even when machine or library versions differ.")
@click.option("--fail-on-missing", is_flag=True, help="Also fail when a baseline cell is missing now.")
@click.option(
    "--no-baseline-ok",
    is_flag=True,
    help="With --baseline-history: pass, with a note, when the history holds no earlier comparable run "
    "(a first night, or the first after a library upgrade).",
)
@click.option("--markdown", type=click.Path(dir_okay=False), help="Also write the verdict and table as Markdown.")
def regress_command(
    files: tuple[str, ...],
    max_slowdown: str,
    max_memory_growth: str,
    noise_k: float,
    baseline_runs: int | None,
    history_path: str | None,
    force: bool,
    fail_on_missing: bool,
    no_baseline_ok: bool,
    markdown: str | None,
) -> int:
    """Compare CURRENT with BASELINE (or the history) cell by cell; exit 1 on any regression.

    A cell regresses when its median latency slowed by more than --max-slowdown and by more
    than --noise-k times the measured spread, when parity went from pass to fail, when it ran
    before and fails now, or when its peak memory grew by more than --max-memory-growth.
    """
    from deploybench.comparability import IncompatibleBaselineError
    from deploybench.errors import UsageError
    from deploybench.files import write_text_atomic
    from deploybench.history import NoBaselineError
    from deploybench.regress import Thresholds, gate, parse_fraction
    from deploybench.report.delta import render_deltas, render_markdown
    from deploybench.results import Results

    wanted = 1 if baseline_runs is not None else 2
    if len(files) != wanted:
        usage = "CURRENT.json with --baseline-history N" if wanted == 1 else "BASELINE.json CURRENT.json"
        raise UsageError(f"regress takes {usage}; got {len(files)} file(s)")
    thresholds = Thresholds(
        max_slowdown=parse_fraction(max_slowdown, "--max-slowdown"),
        max_memory_growth=parse_fraction(max_memory_growth, "--max-memory-growth"),
        noise_k=noise_k,
        fail_on_missing=fail_on_missing,
    )
    current = Results.load(Path(files[-1]))
    if baseline_runs is not None:
        try:
            history = _open_history(history_path, read_only=True)
            baseline = history.baseline(baseline_runs, current, force=force)
        except (NoBaselineError, IncompatibleBaselineError) as exc:
            if not no_baseline_ok:
                raise
            note = f"no baseline: {exc}"
            click.echo(note)
            if markdown:
                write_text_atomic(Path(markdown), f"## Regression check: no baseline yet\n\n{note}\n")
            return 0
        source = f"the last {len(baseline.config['runs'])} comparable earlier run(s) in {history.path}"
    else:
        baseline, source = Results.load(Path(files[0])), files[0]
    report = gate(baseline, current, thresholds, force=force)
    click.echo(f"baseline: {source}", err=True)
    click.echo(render_deltas(report))
    if markdown:
        write_text_atomic(Path(markdown), render_markdown(report))
    return 0 if report.passed else 1


@click.command("history")
@click.argument("model", required=False)
@click.option("--runtime", help="Only this runtime.")
@click.option("--device", help="Only this device (cpu, cuda).")
@click.option("--precision", help="Only this precision.")
@click.option("--batch", type=click.IntRange(min=1), help="Only this batch size.")
@click.option("--last", type=click.IntRange(min=1), help="Only the last N recorded runs.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write an SVG line chart of ms/image per cell.")
@click.option("--runs", "list_runs", is_flag=True, help="List the recorded runs instead.")
@click.option(
    "--record",
    "record_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Record this results file (e.g. a merged sharded sweep) instead; repeatable.",
)
@history_path_option("History database; read-only unless --record")
def history_command(
    model: str | None,
    runtime: str | None,
    device: str | None,
    precision: str | None,
    batch: int | None,
    last: int | None,
    plot: str | None,
    list_runs: bool,
    record_files: tuple[str, ...],
    history_path: str | None,
) -> int:
    """Show the trend of every recorded cell (optionally of one MODEL): date, ms/image, throughput, parity."""
    from tabulate import tabulate

    from deploybench.files import write_text_atomic
    from deploybench.report.trend import render_trend_svg, render_trend_text

    history = _open_history(history_path, read_only=not record_files)
    if record_files:
        from deploybench.history import refuse_shard
        from deploybench.results import Results

        for name in record_files:
            document = Results.load(Path(name))
            refuse_shard(document.config.get("shard"), name)
            click.echo(f"{name}: recorded run {history.record(document)} in {history.path}", err=True)
        return 0
    if list_runs:
        click.echo(
            tabulate(
                [[r["id"], r["created"], r["hostname"], r["cells"]] for r in history.runs()],
                headers=["run", "created", "host", "cells"],
            )
        )
        return 0
    series = history.trend(model=model, runtime=runtime, device=device, precision=precision, batch=batch, last=last)
    if not series:
        click.echo(
            f"no recorded cells match in {history.path}; record runs with 'deploybench compare ... --record'", err=True
        )
        return 0
    click.echo(render_trend_text(series))
    if plot:
        title = "deploybench history: ms per image"
        write_text_atomic(Path(plot), render_trend_svg(series, title))
        click.echo(f"plot: {plot}", err=True)
    return 0


@click.command("merge")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_file", required=True, type=click.Path(dir_okay=False), help="The merged JSON.")
@click.option("--force", is_flag=True, help="Merge even when machine or library versions differ.")
def merge_command(files: tuple[str, ...], out_file: str, force: bool) -> int:
    """Join results documents (e.g. the shards of one 'compare --shard I/N' sweep) into one."""
    from deploybench.merge import merge
    from deploybench.report.table import render_table
    from deploybench.results import Results

    documents = [Results.load(Path(f)) for f in files]
    merged = merge(documents, force=force)
    merged.save(Path(out_file))
    click.echo(render_table(merged))
    click.echo(f"merged {len(documents)} documents, {len(merged.rows)} cells -> {out_file}", err=True)
    absent = merged.config["missing_shards"]
    if absent:
        click.echo(f"warning: shards {', '.join(absent)} are not among the inputs; the sweep is incomplete", err=True)
    return 0


COMMANDS = [regress_command, history_command, merge_command]
