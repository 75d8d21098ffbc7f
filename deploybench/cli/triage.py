"""``deploybench triage MODEL --format F --precision P``: which layer loses the accuracy, and what wins it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from deploybench.cli.options import cache_option, weights_options


def _progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


@click.command("triage")
@click.argument("model")
@click.option("--format", "fmt", required=True, help="Artifact format: onnx, openvino (ov), tensorrt (trt).")
@click.option("--precision", required=True, help="The lower precision to triage: fp16, bf16, int8.")
@click.option(
    "--runtime", help="Runtime whose graph is tapped (default: the format's: onnxruntime, openvino, tensorrt)."
)
@click.option("--fix", is_flag=True, help="Re-export with the suggested layers in FP32; measure before and after.")
@click.option("--no-suggest", is_flag=True, help="Only compare layers; do not search for layers to keep in FP32.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Write the triage as JSON here.")
@click.option("--images", type=click.Path(file_okay=False), help="Real images instead of seeded noise.")
@click.option(
    "--calib-data", type=click.Path(file_okay=False), help="The --calib-data the INT8 artifact was exported with."
)
@click.option("--threads", type=int, help="CPU threads.")
@click.option("--tolerance", multiple=True, help="Override a parity tolerance, e.g. min_cosine=0.999.")
@click.option("--batch", type=int, default=1, show_default=True, help="--fix: batch size the two rows are timed at.")
@click.option("--quick", is_flag=True, help="--fix: short warm-up and timed window.")
@cache_option
@weights_options
def triage_command(
    model: str,
    fmt: str,
    precision: str,
    runtime: str | None,
    fix: bool,
    no_suggest: bool,
    json_file: str | None,
    images: str | None,
    calib_data: str | None,
    threads: int | None,
    tolerance: tuple[str, ...],
    batch: int,
    quick: bool,
    cache_dir: str | None,
    weights: dict[str, Any],
) -> int:
    """Compare every layer of MODEL's FORMAT/PRECISION artifact with its FP32 graph; name the layer to keep in FP32."""
    from deploybench import registry
    from deploybench.cache import ArtifactCache
    from deploybench.exporters.base import ExportOptions
    from deploybench.files import write_json_atomic
    from deploybench.harness import MeasurePolicy
    from deploybench.models import resolve
    from deploybench.parity import parse_tolerance_overrides
    from deploybench.triage import FixOptions, TriageOptions, measure_fix, triage
    from deploybench.triage.diagnose import artifacts_for
    from deploybench.triage.render import fix_table, layer_table, summary

    options = TriageOptions(
        format=registry.exporters.canonical(fmt),
        precision=precision,
        runtime=runtime and registry.runtimes.canonical(runtime),
        images_dir=images,
        threads=threads,
        tolerance=parse_tolerance_overrides(tolerance),
        export=ExportOptions(calib_data=calib_data),
        suggest=not no_suggest,
    )
    spec = resolve(model, **weights)
    cache = ArtifactCache(Path(cache_dir) if cache_dir else None)
    result = triage(spec, options, cache, _progress)
    click.echo(layer_table(result))
    click.echo(summary(result))
    if fix and result.remedy is not None:
        _, candidate = artifacts_for(cache, spec, options)
        measure_fix(
            spec,
            result,
            options,
            FixOptions(batch=batch, policy=MeasurePolicy.quick() if quick else MeasurePolicy()),
            cache,
            candidate,
            _progress,
        )
        click.echo(fix_table(result))
    elif fix:
        click.echo("--fix: nothing to re-export (no remedy)", err=True)
    if json_file:
        write_json_atomic(Path(json_file), result.to_dict())
    return 0


COMMANDS = [triage_command]
