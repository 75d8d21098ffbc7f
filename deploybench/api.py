"""deploybench as a library: ``compare``, ``bench`` and ``export`` do what the commands do.

    import deploybench

    results = deploybench.compare(["mobilenetv4"], target="cpu", batches=(1,), out="results")
    for row in results.rows:
        print(row.runtime, row.ms_per_image, row.parity_verdict)

Each call takes the command's options as keyword arguments (``--max-seconds`` is
``max_seconds``), validates them before any work, resumes an output folder, stamps the
machine's fingerprint and returns :class:`~deploybench.results.Results`. The CLI parses its
arguments, calls these, renders the result and sets the exit code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench.errors import UnsupportedError, UsageError

if TYPE_CHECKING:
    from deploybench.artifact import Artifact
    from deploybench.results import Results
    from deploybench.sweep import Sweep, SweepConfig
    from deploybench.targets import Target

Notify = Callable[[str], None]
PathLike = str | Path


def to_stderr(message: str) -> None:
    """Where progress notes go unless a caller passes its own ``progress``."""
    print(f"  {message}", file=sys.stderr, flush=True)


def sweep_config(
    models: Sequence[str] | str,
    *,
    target: Target | str = "cpu",
    runtimes: Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    batches: str | Sequence[int] | None = None,
    device: str | None = None,
    threads: int | None = None,
    quick: bool = False,
    min_iters: int | None = None,
    min_seconds: float | None = None,
    max_seconds: float | None = None,
    isolate: bool = True,
    worker_per: str = "artifact",
    timeout: float = 600.0,
    tolerance: Mapping[str, float] | Sequence[str] = (),
    images: str | None = None,
    dataset: str | None = None,
    mode: str = "auto",
    compile_mode: str = "default",
    ort_provider: str | None = None,
    cuda_graphs: bool = False,
    dynamic_batch: bool = False,
    calib_data: str | None = None,
    shard: tuple[int, int] = (1, 1),
    retry_failed: bool = False,
    pretrained: bool = False,
    checkpoint: str | None = None,
    trust_checkpoint: bool = False,
    checkpoint_partial: bool = False,
    data_init: bool = False,
) -> SweepConfig:
    """The sweep these options describe; the target fills what they leave out.

    ``batches`` is a list of sizes, their text ("1,8") or "auto"; ``tolerance`` is a mapping
    or ``KEY=VALUE`` strings. Nothing runs and nothing is read here.
    """
    from deploybench.exporters.base import ExportOptions
    from deploybench.harness import MeasurePolicy
    from deploybench.parity import parse_tolerance_overrides
    from deploybench.runtimes.base import RuntimeOptions
    from deploybench.sweep import SweepConfig, parse_batches
    from deploybench.targets import load_target

    tgt = load_target(target, None) if isinstance(target, str) else target
    models = [models] if isinstance(models, str) else models  # one name, not its letters
    policy = MeasurePolicy.quick() if quick else MeasurePolicy()
    if min_iters is not None:
        policy = replace(policy, min_iters=min_iters)
    if min_seconds is not None:
        policy = replace(policy, min_seconds=min_seconds)
    if max_seconds is not None:
        policy = replace(policy, max_seconds=max_seconds)
    if policy.max_seconds < policy.min_seconds:  # the cap never cuts the floor short
        policy = replace(policy, max_seconds=policy.min_seconds)
    sizes: tuple[int, ...] | str
    if batches is None:
        sizes = tgt.batches
    elif isinstance(batches, str):
        sizes = parse_batches(batches)
    else:
        sizes = tuple(int(b) for b in batches)
    overrides = dict(tolerance) if isinstance(tolerance, Mapping) else parse_tolerance_overrides(tuple(tolerance))
    return SweepConfig(
        models=tuple(models),
        runtimes=tuple(runtimes) if runtimes else tgt.runtimes,
        formats=tuple(formats) if formats else None,
        precisions=tuple(precisions) if precisions else tgt.precisions,
        batches=sizes,
        device=device or tgt.device,
        threads=threads if threads is not None else tgt.threads,
        policy=policy,
        isolate=isolate,
        worker_per=worker_per,
        timeout_s=timeout,
        images_dir=images,
        dataset_dir=dataset,
        tolerance=overrides,
        runtime_options=RuntimeOptions(
            mode=mode, compile_mode=compile_mode, provider=ort_provider, cuda_graphs=cuda_graphs
        ),
        dynamic_batch=dynamic_batch,
        export=ExportOptions(calib_data=calib_data),
        shard=shard,
        retry_failed=retry_failed,
        sample=tgt.sample,
        pretrained=pretrained,
        checkpoint=checkpoint,
        trust_checkpoint=trust_checkpoint,
        checkpoint_partial=checkpoint_partial,
        data_init=data_init,
    )


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _default_sigterm_in_child() -> None:
    # A library's helper forked from a thread (OpenVINO's telemetry sends from a thread pool
    # through a forked process, and may block in getaddrinfo offline) would inherit the
    # handler below, which only Python code can run: its terminate() and our exit's join of it
    # then wait forever. Forked children get the default SIGTERM back.
    if signal.getsignal(signal.SIGTERM) is _raise_interrupt:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_default_sigterm_in_child)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a sweep like Ctrl-C: the current cell stops, finished rows stay saved."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(
    config: SweepConfig,
    *,
    cache: PathLike | None = None,
    out: PathLike | None = None,
    resume: bool = False,
    argv: Sequence[str] = (),
    live: bool | None = None,
    progress: Notify = to_stderr,
) -> Sweep:
    """Run ``config``; with ``out`` every finished row is saved to ``out/results.json`` at once.

    ``resume`` keeps the rows already in ``out/results.json`` and runs the rest. ``live``:
    a progress bar (None: only on a terminal), else plain lines.
    """
    from deploybench.cache import ArtifactCache
    from deploybench.env import fingerprint
    from deploybench.progress import Progress
    from deploybench.results import Results
    from deploybench.streams import stdout_to_stderr
    from deploybench.sweep import Sweep, summarise_skips

    results = Results(config=config.record(argv), environment=fingerprint())
    artifacts = ArtifactCache(Path(cache) if cache else None)
    artifacts.ensure_writable()  # refuse now, not after the first cells have run
    out_dir = Path(out) if out is not None else None
    results_path = out_dir / "results.json" if out_dir is not None else None
    if resume and results_path is not None and results_path.is_file():
        previous = Results.load(results_path)
        previous.config, previous.environment = results.config, results.environment
        results = previous
        progress(f"resuming: {len(results.rows)} rows already in {results_path}")
    tracker = Progress(live=live)
    sweep = Sweep(
        config,
        artifacts,
        results,
        results_path,
        work_dir=out_dir / "references" if out_dir is not None else None,
        progress=tracker.note,
        tracker=tracker,
    )
    # Library prints and progress bars must not land in the table's stream.
    with _sigterm_as_interrupt(), stdout_to_stderr():
        try:
            sweep.run()
        finally:
            tracker.close()
    for line in summarise_skips(sweep.skipped):
        progress(f"skipped {line}")
    return sweep


def write_outputs(results: Results, out: PathLike | None, html: PathLike | None, progress: Notify = to_stderr) -> None:
    """``results.json``, ``.csv`` and ``.md`` in ``out``; the HTML report at ``html``."""
    from deploybench.files import write_text_atomic
    from deploybench.report.table import render_csv, render_markdown

    if out is not None:
        out_dir = Path(out)
        results.save(out_dir / "results.json")
        write_text_atomic(out_dir / "results.csv", render_csv(results))
        write_text_atomic(out_dir / "results.md", render_markdown(results))
        progress(f"results: {out_dir / 'results.json'} (+ .csv, .md)")
    if html:
        from deploybench.report.html import render_html

        write_text_atomic(Path(html), render_html(results))
        progress(f"html report: {html}")


def compare(
    models: Sequence[str] | str,
    *,
    target: Target | str = "cpu",
    out: PathLike | None = None,
    resume: bool = False,
    html: PathLike | None = None,
    cache: PathLike | None = None,
    allow_empty: bool = False,
    triage: bool = False,
    record: str | None = None,
    live: bool | None = False,
    progress: Notify = to_stderr,
    on_results: Callable[[Results], None] = lambda results: None,
    argv: Sequence[str] = (),
    **options: Any,
) -> Results:
    """Export, run and check every model x format x runtime the target supports.

    ``options`` are :func:`sweep_config`'s. With ``out``, rows are saved as they finish and
    the reports are written at the end; ``resume=True`` finishes an earlier run in ``out``.
    ``triage`` names the layers behind each row that fails parity; ``record`` stores the run
    in a history database ("" for the default one). ``on_results`` sees the results before
    the reports are written (the CLI prints its table there, so a report path that cannot be
    written loses nothing). A run in which no cell could run raises
    :class:`~deploybench.errors.UnsupportedError` unless ``allow_empty``. SIGTERM ends it like
    Ctrl-C (``KeyboardInterrupt``), with every finished row saved.
    """
    from deploybench.output_lock import exclusive_output
    from deploybench.targets import load_target

    names = [models] if isinstance(models, str) else list(models)
    tgt = load_target(target, None) if isinstance(target, str) else target
    config = sweep_config(names, target=tgt, **options)
    config.validate()  # a mistyped option is the only line printed
    if record is not None:  # a partial sweep recorded as a night would enter later baselines
        from deploybench.history import refuse_shard

        refuse_shard(config.shard, f"this run (--shard {config.shard[0]}/{config.shard[1]})")
    progress(
        f"target {tgt.name}: {config.device}, runtimes {', '.join(config.runtimes)}, "
        f"precisions {', '.join(config.precisions)}, batches {config.batches}"
    )
    out_dir = Path(out) if out is not None else None
    # One run per output folder: a second one is refused instead of overwriting this one's rows.
    lock = exclusive_output(out_dir, "--resume" if resume else "--out") if out_dir else contextlib.nullcontext()
    with _sigterm_as_interrupt(), lock:
        sweep = run_sweep(config, cache=cache, out=out_dir, resume=resume, argv=argv, live=live, progress=progress)
        if not allow_empty and (why := sweep.nothing_ran()):
            raise UnsupportedError(f"nothing to run: {why}; pass --allow-empty to exit 0 with an empty table")
        results = sweep.results
        if triage:
            from deploybench.triage.failing_rows import triage_failing_rows

            triage_failing_rows(results, config, sweep.cache, progress)
        try:
            on_results(results)  # e.g. a table printed into a closed pipe: the reports are still written
        finally:
            write_outputs(results, out_dir, html, progress)
            if record is not None:
                _record(results, record, progress)
    return results


def _record(results: Results, path: str, progress: Notify) -> None:
    from deploybench.history import History

    if not results.rows:
        progress("history: nothing measured, nothing recorded")
        return
    history = History(Path(path) if path else None)
    progress(f"recorded run {history.record(results)} in {history.path}")


def bench(
    model: str,
    runtime: str,
    *,
    format: str | None = None,
    precision: str = "fp32",
    batches: str | Sequence[int] = (1,),
    device: str | None = None,
    cache: PathLike | None = None,
    live: bool | None = False,
    progress: Notify = to_stderr,
    argv: Sequence[str] = (),
    **options: Any,
) -> Results:
    """Time ``model`` in one ``runtime`` at each batch size: full statistics, memory, timed region.

    The device defaults to the runtime's own (TensorRT: cuda). ``options`` are
    :func:`sweep_config`'s.
    """
    from deploybench import registry

    devices = registry.runtimes.get(runtime).devices
    config = sweep_config(
        (model,),
        target="cpu",
        runtimes=(runtime,),
        formats=(format,) if format else None,
        precisions=(precision,),
        batches=batches,
        device=device or ("cpu" if "cpu" in devices else devices[0]),
        **options,
    )
    with _sigterm_as_interrupt():
        sweep = run_sweep(config, cache=cache, argv=argv, live=live, progress=progress)
    if why := sweep.nothing_ran():
        raise UnsupportedError(f"nothing to run: {why}")
    return sweep.results


@dataclass(frozen=True)
class Exported:
    """One artifact ``export`` produced: from the cache, or built now in ``seconds``."""

    artifact: Artifact
    cached: bool
    seconds: float


def export(
    model: str,
    to: str | Sequence[str],
    *,
    precision: str = "fp32",
    batch: str = "1:1:64",
    device: str = "cpu",
    cache: PathLike | None = None,
    force: bool = False,
    pretrained: bool = False,
    checkpoint: str | None = None,
    trust_checkpoint: bool = False,
    checkpoint_partial: bool = False,
    data_init: bool = False,
    progress: Notify = to_stderr,
    on_export: Callable[[Exported], None] = lambda exported: None,
    **export_options: Any,
) -> list[Exported]:
    """``model`` exported to each format in ``to`` through the cache (``force``: built again).

    ``export_options`` are :class:`~deploybench.exporters.base.ExportOptions` fields (``opset``,
    ``simplify``, ``script``, ``calib_data``, ``workspace_gb``, ``keep_fp32``). Every format is
    validated before the first export; each artifact is loaded back and run once, and
    ``on_export`` hears it as soon as it is ready.
    """
    from deploybench import registry
    from deploybench.artifact import BatchRange
    from deploybench.cache import ArtifactCache
    from deploybench.exporters.base import ExportOptions
    from deploybench.models import resolve
    from deploybench.streams import stdout_to_stderr

    names = [to] if isinstance(to, str) else list(to)
    exporters = [registry.exporters.get(registry.exporters.canonical(name))() for name in names]
    for exporter in exporters:
        if exporter.in_memory:
            raise UsageError(f"{exporter.name} is the module itself: nothing to export; time it with --runtime torch")
    options = ExportOptions(precision=precision, device=device, batch=BatchRange.parse(batch), **export_options)
    spec = resolve(
        model,
        pretrained=pretrained,
        checkpoint=checkpoint,
        trust_checkpoint=trust_checkpoint,
        checkpoint_partial=checkpoint_partial,
        data_init=data_init,
    )
    for exporter in exporters:  # refuse unsupported combinations before any work
        exporter.validate(spec, options)
    for note in spec.notes:
        progress(f"note: {note}")
    artifacts = ArtifactCache(Path(cache) if cache else None)
    artifacts.ensure_writable()
    done = []
    for exporter in exporters:
        progress(f"{spec.name} -> {exporter.name} {precision} ...")
        started = time.perf_counter()
        with stdout_to_stderr():  # NNCF's bars and compiler notices stay off stdout
            artifact, hit = artifacts.get_or_export(exporter, spec, options, force=force)
        done.append(Exported(artifact, hit, time.perf_counter() - started))
        on_export(done[-1])
    return done
