"""Options several commands share, as decorators."""

from __future__ import annotations

from typing import Any, Callable

import click

F = Callable[..., Any]


def weights_options(func: F) -> F:
    func = click.option("--no-data-init", is_flag=True,
                        help="Random weights: keep the library's BatchNorm statistics instead of re-estimating "
                             "them on bundled photos (parity is then often inconclusive).")(func)
    func = click.option("--trust-checkpoint", is_flag=True,
                        help="Allow checkpoints that contain pickled code (runs code from the file).")(func)
    func = click.option("--checkpoint", type=click.Path(dir_okay=False),
                        help="Weights: a .safetensors file or a state dict (loaded with weights_only=True).")(func)
    func = click.option("--pretrained", is_flag=True, help="Download the library's pretrained weights.")(func)
    return func


def cache_option(func: F) -> F:
    return click.option("--cache", "cache_dir", type=click.Path(file_okay=False),
                        help="Artifact cache folder (default: $DEPLOYBENCH_CACHE or ~/.cache/deploybench).")(func)


def split_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())
