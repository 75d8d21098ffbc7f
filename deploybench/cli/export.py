"""``deploybench export MODEL --to FORMAT[,FORMAT...]``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from deploybench.cli.options import cache_option, split_list, weights_options


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
    from deploybench import api

    def show(exported: api.Exported) -> None:
        artifact = exported.artifact
        path = artifact.file.parent  # the cache folder
        if out_dir:
            path = Path(out_dir) / path.name
            if path.exists():
                shutil.rmtree(path)
            shutil.copytree(artifact.file.parent, path)
        how = (
            f"cache hit in {exported.seconds:.2f} s"
            if exported.cached
            else f"exported in {artifact.manifest['export_seconds']:.1f} s"
        )
        click.echo(
            f"{artifact.format:<12} {artifact.size_bytes() / 2**20:8.2f} MB  {how:<24} {path / artifact.main_file}"
        )

    api.export(
        model,
        split_list(formats) or (),
        precision=precision,
        batch=batch,
        device=device,
        cache=cache_dir,
        force=force,
        opset=opset,
        simplify=simplify,
        script=script,
        calib_data=calib_data,
        workspace_gb=workspace_gb,
        keep_fp32=split_list(keep_fp32) or (),
        progress=lambda message: click.echo(message, err=True),
        on_export=show,
        **weights,
    )


COMMANDS = [export_command]
