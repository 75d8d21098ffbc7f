"""Triage one artifact: find it and its FP32 reference, walk the layers, search for the layers to keep in FP32."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from deploybench import batch as batches
from deploybench import registry
from deploybench.artifact import Artifact
from deploybench.cache import ArtifactCache
from deploybench.errors import DeployBenchError, TriageError, first_line
from deploybench.exporters.base import ExportOptions
from deploybench.models import ModelSpec
from deploybench.triage.remedy import search_keep_set
from deploybench.triage.report import Remedy, Triage
from deploybench.triage.taps import LayerTap, default_runtime, tap_class
from deploybench.triage.walk import KEEP_LAYERS, PASS_BYTES, jump_rule, walk

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TriageOptions:
    format: str
    precision: str
    runtime: str | None = None  # None: the first runtime with a tap for the format
    images_dir: str | None = None  # real images instead of seeded noise (the parity inputs)
    threads: int | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    export: ExportOptions = field(default_factory=ExportOptions)  # must match the artifact's (calib data, batch)
    suggest: bool = True  # search for the layers to keep in FP32
    pass_bytes: int = PASS_BYTES
    keep_layers: int = KEEP_LAYERS


def export_command(spec: ModelSpec, fmt: str, precision: str, keep: list[str] | tuple[str, ...] = ()) -> str:
    keep_part = f" --keep-fp32 {','.join(keep)}" if keep else ""
    return f"deploybench export {spec.name} --to {fmt} --precision {precision}{keep_part}"


def cached_artifact(cache: ArtifactCache, spec: ModelSpec, fmt: str, options: ExportOptions) -> Artifact | None:
    """The artifact ``deploybench export`` (or ``compare``) left in the cache for these options, if any."""
    exporter = registry.exporters.get(fmt)()
    options = exporter.bind_cache(options, cache.root)
    artifact = cache.lookup(cache.folder(exporter, spec, options))
    if artifact is not None:
        artifact.model = spec
    return artifact


def artifacts_for(cache: ArtifactCache, spec: ModelSpec, options: TriageOptions) -> tuple[Artifact, Artifact]:
    """(FP32 reference, candidate): the candidate must exist; the reference is exported when missing."""
    fmt = registry.exporters.canonical(options.format)
    exporter_cls = registry.exporters.get(fmt)
    if options.precision == "fp32":
        raise TriageError("fp32 is the reference precision; triage an fp16, bf16 or int8 artifact")
    if options.precision not in exporter_cls.precisions:
        raise TriageError(
            f"{fmt} has no {options.precision} artifacts (it exports {', '.join(exporter_cls.precisions)}); "
            f"triage one of those, e.g. {export_command(spec, fmt, exporter_cls.precisions[-1])}"
        )
    wanted = replace(options.export, precision=options.precision)
    candidate = cached_artifact(cache, spec, fmt, wanted)
    if candidate is None:
        raise TriageError(
            f"no {fmt} {options.precision} artifact of {spec.name} in {cache.root}; "
            f"export it first: {export_command(spec, fmt, options.precision)}"
        )
    reference, _ = cache.get_or_export(exporter_cls(), spec, replace(wanted, precision="fp32", keep_fp32=()))
    return reference, candidate


def parity_judge(
    spec: ModelSpec, inputs: np.ndarray, precision: str, tolerance: dict[str, float]
) -> Callable[[list[np.ndarray]], tuple[bool, str]]:
    """Judges candidate outputs as ``compare`` judges a row: against PyTorch FP32 on the same inputs."""
    from deploybench.cell import run_in_chunks
    from deploybench.parity import compare
    from deploybench.runtimes.base import RuntimeOptions

    runtime = registry.runtimes.get("torch")(RuntimeOptions(device="cpu", precision="fp32"))
    with runtime.load(Artifact.from_module(spec)):
        expected = run_in_chunks(runtime, inputs, min(len(inputs), 8))

    def judge(outputs: list[np.ndarray]) -> tuple[bool, str]:
        parity = compare(expected, outputs, spec.task, precision, tolerance)
        words = f"{parity.verdict} ({parity.key_figure()})" if parity.key_figure() else parity.verdict
        return parity.passed, words + (f": {parity.reasons[0]}" if parity.reasons else "")

    return judge


def open_tap(
    runtime: str, reference: Artifact, candidate: Artifact, spec: ModelSpec | None, options: TriageOptions
) -> LayerTap:
    registry.runtimes.require(runtime)
    cls = tap_class(runtime)
    if cls.format != reference.format:
        raise TriageError(
            f"{runtime} taps {cls.format} artifacts, not {reference.format}; "
            f"pass --runtime {default_runtime(reference.format, registry.runtimes.names())}"
        )
    try:
        tap = cls.open(
            reference, candidate, spec, replace(options.export, precision=options.precision), options.threads
        )
    except DeployBenchError:
        raise
    except Exception as exc:  # a graph the tap cannot mark is a message, not a traceback
        raise TriageError(
            f"{runtime} cannot expose the intermediate tensors of {candidate.file.name} "
            f"({type(exc).__name__}: {first_line(exc)}); "
            "triage needs a graph whose node outputs can be marked"
        ) from exc
    if not tap.layers():
        raise TriageError(
            f"the {reference.format} graph {candidate.file} exposes no intermediate tensors that the "
            f"reference and the {options.precision} candidate share (no named nodes with float outputs "
            "in both); triage needs a graph whose node outputs can be marked"
        )
    return tap


def triage(
    spec: ModelSpec, options: TriageOptions, cache: ArtifactCache, progress: Progress = lambda m: None
) -> Triage:
    """Compare every layer of the candidate with the FP32 graph, name the first jump, suggest what to keep in FP32."""
    from deploybench.sweep import SweepConfig, parity_inputs

    if not spec.has_module or spec.extra_inputs:  # the end-to-end verdict is against PyTorch on one image input
        raise TriageError(
            f"triage compares against the PyTorch module on one image input, and {spec.name} is "
            f"{'an ONNX file' if not spec.has_module else 'a model of several inputs'}; "
            "export from the PyTorch model to triage it"
        )
    reference, candidate = artifacts_for(cache, spec, options)
    runtime = options.runtime or default_runtime(candidate.format, registry.runtimes.names())
    parity_batch, _ = parity_inputs(spec, SweepConfig(models=(spec.name,), images_dir=options.images_dir))
    inputs = batches.arrays(parity_batch)[0]  # one input: multi-input models were refused above
    rule = jump_rule(options.precision)
    judge = parity_judge(spec, inputs, options.precision, options.tolerance)
    tap = open_tap(runtime, reference, candidate, spec, options)
    try:
        progress(
            f"{spec.name}: comparing {len(tap.layers())} layers of {candidate.format} {options.precision} "
            f"with the fp32 graph in {runtime} on {len(inputs)} images ..."
        )
        found = walk(tap, inputs, rule, options.pass_bytes, options.keep_layers)
        passed, verdict = judge(tap.candidate_outputs(inputs))
        result = Triage(
            model=spec.name,
            format=candidate.format,
            precision=options.precision,
            runtime=runtime,
            reference=f"{runtime} on the fp32 {candidate.format} graph (CPU)",
            images=len(inputs),
            rule=rule,
            layers_total=found.layers_total,
            layers=found.layers,
            first_jump=found.first_jump,
            verdict=verdict,
        )
        if passed:
            result.remedy_note = "parity passes: no layer needs to stay in FP32"
        elif not options.suggest:
            result.remedy_note = "not searched"
        elif why := tap.keep_unsupported():
            result.remedy_note = why
        elif found.first_jump is None:
            result.remedy_note = (
                "no layer's error jumps: the error builds up evenly, so keeping single layers "
                "in FP32 will not fix it; use a higher precision for the whole graph"
            )
        else:
            search = search_keep_set(tap, inputs, rule, judge, found.first_jump, progress)
            if search.passed:
                result.remedy = Remedy(
                    keep=search.keep,
                    modules=[layer.module for layer in search.kept_layers],
                    mechanism=tap.mechanism,
                    verdict_before=verdict,
                    verdict_after=search.verdict,
                    trials=search.trials,
                    export_command=export_command(spec, candidate.format, options.precision, search.keep),
                )
            else:
                result.remedy_note = f"no remedy found after {search.trials} trials: {search.why_not}"
        return result
    finally:
        tap.close()
