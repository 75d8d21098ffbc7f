"""``deploybench export MODEL --to FORMAT[,FORMAT...]``."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from deploybench.cli.options import cache_option, split_list, weights_options
from deploybench.cli.streams import stdout_to_stderr


@click.command("export")
@click.argument("model")
@click.option(
    "--to", "formats", required=True, help="Formats, comma-separated: ts, onnx, ov, trt, aoti (or full names)."
)
@click.option("--precision", default="fp32", show_default=True, help="fp32, fp16, bf16, int8 (per format).")
@click.option("--batch", default="1:1:64", show_default=True, help="N (static) or MIN:OPT:MAX.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (gpu for OpenVINO).")
@click.option("--opset", type=int, help="ONNX opset (default: the exporter's).")
@click.option("--simplify", is_flag=True, help="Simplify the ONNX graph with onnxslim.")
@click.option("--script", is_flag=True, help="TorchScript: script instead of trace.")
@click.option("--calib-data", type=click.Path(file_okay=False), help="Folder of images for INT8 calibration.")
@click.option("--workspace-gb", type=float, default=4.0, show_default=True, help="TensorRT builder workspace.")
@click.option("--keep-fp32", help="Layers to keep in FP32, comma-separated, as deploybench triage names them.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Also copy each artifact folder here.")
@click.option("--force", is_flag=True, help="Rebuild even when the cache has it.")
@cache_option
@weights_options
def export_command(
    model: str,
    formats: str,
    precision: str,
    batch: str,
    device: str,
    opset: int | None,
    simplify: bool,
    script: bool,
    calib_data: str | None,
    workspace_gb: float,
    keep_fp32: str | None,
    out_dir: str | None,
    force: bool,
    cache_dir: str | None,
    weights: dict[str, Any],
) -> None:
    """Export MODEL to one or more formats (cached; each result is loaded back and run once)."""
    from deploybench import registry
    from deploybench.artifact import BatchRange
    from deploybench.cache import ArtifactCache
    from deploybench.exporters.base import ExportOptions
    from deploybench.models import resolve

    names = [registry.exporters.canonical(f) for f in split_list(formats) or ()]
    options = ExportOptions(
        precision=precision,
        device=device,
        batch=BatchRange.parse(batch),
        opset=opset,
        simplify=simplify,
        script=script,
        calib_data=calib_data,
        workspace_gb=workspace_gb,
        keep_fp32=split_list(keep_fp32) or (),
    )
    exporters = [registry.exporters.get(name)() for name in names]
    spec = resolve(model, **weights)
    for exporter in exporters:  # refuse unsupported combinations before any work
        exporter.validate(spec, options)
    for note in spec.notes:
        click.echo(f"note: {note}", err=True)
    cache = ArtifactCache(Path(cache_dir) if cache_dir else None)
    cache.ensure_writable()
    for exporter in exporters:
        click.echo(f"{spec.name} -> {exporter.name} {precision} ...", err=True)
        started = time.perf_counter()
        with stdout_to_stderr():  # stdout lists the artifacts; NNCF's bars and compiler notices go to stderr
            artifact, hit = cache.get_or_export(exporter, spec, replace(options))
        seconds = time.perf_counter() - started
        path = artifact.path
        if out_dir:
            path = Path(out_dir) / path.name
            if path.exists():
                shutil.rmtree(path)
            shutil.copytree(artifact.path, path)
        how = f"cache hit in {seconds:.2f} s" if hit else f"exported in {artifact.manifest['export_seconds']:.1f} s"
        click.echo(
            f"{exporter.name:<12} {artifact.size_bytes() / 2**20:8.2f} MB  {how:<24} {path / artifact.main_file}"
        )


COMMANDS = [export_command]
