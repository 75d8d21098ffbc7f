"""Options several commands share, as decorators."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

F = Callable[..., Any]


WEIGHTS_FLAGS = ("pretrained", "checkpoint", "trust_checkpoint", "checkpoint_partial")


def weights_options(func: F) -> F:
    """--pretrained / --checkpoint PATH / --trust-checkpoint / --checkpoint-partial / --data-init,
    handed to the command as one ``weights`` dict of ModelRef fields."""

    @functools.wraps(func)
    def with_weights(*args: Any, **kwargs: Any) -> Any:
        weights = {name: kwargs.pop(name) for name in WEIGHTS_FLAGS}
        weights["data_init"] = kwargs.pop("data_init")
        return func(*args, weights=weights, **kwargs)

    for option in (
        click.option(
            "--data-init",
            is_flag=True,
            help="Random weights: re-estimate BatchNorm statistics on bundled photos so outputs follow the "
            "input (experimental: deep random networks become chaotic, see README).",
        ),
        click.option(
            "--checkpoint-partial",
            is_flag=True,
            help="Load only the checkpoint tensors that fit the model (missing, unexpected and "
            "shape-mismatched ones are skipped and counted); without it a checkpoint must fit exactly.",
        ),
        click.option(
            "--trust-checkpoint",
            is_flag=True,
            help="Allow checkpoints that contain pickled code (runs code from the file).",
        ),
        click.option(
            "--checkpoint",
            type=click.Path(dir_okay=False),
            help="Weights: a .safetensors file or a state dict (loaded with weights_only=True).",
        ),
        click.option("--pretrained", is_flag=True, help="Download the library's pretrained weights."),
    ):
        with_weights = option(with_weights)
    return with_weights


def cache_option(func: F) -> F:
    return click.option(
        "--cache",
        "cache_dir",
        type=click.Path(file_okay=False),
        help="Artifact cache folder (default: $DEPLOYBENCH_CACHE or ~/.cache/deploybench).",
    )(func)


def split_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


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
                help="Timed seconds at most (default 3; never under --min-seconds).",
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


def run_settings(run: dict[str, Any], weights: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``deploybench.api`` that ``common_run_options`` and
    ``weights_options`` parsed; ``quiet`` becomes ``live``."""
    settings = dict(run, **weights)
    settings["isolate"] = not settings.pop("no_isolate")
    settings["batches"] = settings.pop("batch")
    settings["tolerance"] = tuple(settings["tolerance"])
    settings["live"] = False if settings.pop("quiet") else None  # a live display on a terminal only
    return settings
