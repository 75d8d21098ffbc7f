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
    return with_weights  # type: ignore[return-value]


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
