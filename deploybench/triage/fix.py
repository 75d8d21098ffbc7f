"""``--fix``: re-export with the suggested layers kept in FP32 and measure both artifacts as deployed.

Both sides run through the same cell machinery as ``compare`` (a fresh worker process
each, the harness's clock, parity against PyTorch FP32 on the same inputs), so the
recovered parity and its speed cost are figures of the same kind as every other row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from deploybench import isolation, registry
from deploybench.artifact import Artifact
from deploybench.cache import ArtifactCache
from deploybench.cell import Cell
from deploybench.harness import MeasurePolicy
from deploybench.models import ModelSpec
from deploybench.results import Row
from deploybench.runtimes.base import RuntimeOptions
from deploybench.triage.diagnose import TriageOptions
from deploybench.triage.report import FixRow, Triage


@dataclass(frozen=True)
class FixOptions:
    batch: int = 1
    policy: MeasurePolicy = MeasurePolicy()
    timeout_s: float = isolation.DEFAULT_TIMEOUT_S
    isolate: bool = True


def _fix_row(variant: str, keep: int, row: Row) -> FixRow:
    parity = row.parity
    return FixRow(
        variant=variant,
        keep=keep,
        status=row.status,
        verdict=parity.verdict if parity else None,
        key_figure=parity.key_figure() if parity else "",
        reasons=list(parity.reasons) if parity else [row.message],
        ms_per_image=row.ms_per_image,
        throughput=row.throughput,
        cv=row.stats.cv if row.stats else None,
        artifact_mb=row.artifact_mb,
    )


def measure_fix(
    spec: ModelSpec,
    result: Triage,
    options: TriageOptions,
    fix: FixOptions,
    cache: ArtifactCache,
    candidate: Artifact,
    progress: Callable[[str], None] = lambda m: None,
) -> list[FixRow]:
    """Export the fixed artifact (cached) and measure before and after; the rows go into ``result.fix``."""
    from deploybench.sweep import SweepConfig, build_reference, parity_inputs

    assert result.remedy is not None, "measure_fix needs a remedy"
    keep = tuple(result.remedy.keep)
    exporter = registry.exporters.get(candidate.format)()
    progress(f"{spec.name}: exporting {candidate.format} {options.precision} with {len(keep)} layer(s) in FP32 ...")
    fixed, _ = cache.get_or_export(exporter, spec, replace(options.export, precision=options.precision, keep_fp32=keep))
    inputs, origin = parity_inputs(spec, SweepConfig(models=(spec.name,), images_dir=options.images_dir))
    reference = build_reference(
        spec, inputs, cache.root / "references" / f"{spec.identity_hash()[:16]}-triage.npz", origin=origin
    )
    rows = []
    for variant, artifact, kept in (("before", candidate, 0), ("after", fixed, len(keep))):
        cell = Cell(
            model=spec.ref,
            model_name=spec.name,
            task=spec.task,
            format=artifact.format,
            runtime=result.runtime,
            batch=fix.batch,
            precision=options.precision,
            artifact_dir=str(artifact.path),
            reference=str(reference),
            runtime_options=RuntimeOptions(precision=options.precision, threads=options.threads),
            policy=fix.policy,
            tolerance=options.tolerance,
            plugin_modules=tuple(registry.dynamic_plugin_modules()),
        )
        progress(f"{spec.name}: measuring {variant} ({artifact.path.name if artifact.path else ''}) ...")
        rows.append(_fix_row(variant, kept, isolation.run(cell, isolate=fix.isolate, timeout_s=fix.timeout_s)))
    result.fix = rows
    return rows


def speed_cost(rows: list[FixRow]) -> float | None:
    """ms/image after over before (above 1: the fix costs time)."""
    by_variant = {row.variant: row for row in rows}
    before, after = by_variant.get("before"), by_variant.get("after")
    if not before or not after or not before.ms_per_image or not after.ms_per_image:
        return None
    return after.ms_per_image / before.ms_per_image
