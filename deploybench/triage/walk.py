"""Walk a tap's layers in passes of bounded size, keeping figures rather than tensors.

Each pass asks the tap for as many layers' tensors as fit ``pass_bytes`` (for both graphs
together), turns them into a LayerError and drops them, so a large model never holds
more than one pass of activations. At most ``keep_layers`` records are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from deploybench.triage.metrics import centred_cosine, error_growth, nonfinite_count, spread_normalised_error
from deploybench.triage.report import JumpRule, LayerError
from deploybench.triage.taps import GraphLayer, LayerTap

PASS_BYTES = 256 << 20
UNKNOWN_LAYER_BYTES = 16 << 20  # a layer whose shape inference could not tell
KEEP_LAYERS = 400

# The first layer whose error jumps: large on its own and several times its inputs'.
JUMP_RULES = {
    "fp16": JumpRule(min_error=1e-2, min_growth=4.0),
    "bf16": JumpRule(min_error=5e-2, min_growth=4.0),
    "int8": JumpRule(min_error=0.15, min_growth=2.0),
}


def jump_rule(precision: str) -> JumpRule:
    return JUMP_RULES.get(precision, JUMP_RULES["fp16"])


@dataclass
class LayerWalk:
    layers_total: int
    layers: list[LayerError]  # capped, in depth order
    first_jump: LayerError | None


def passes(layers: list[GraphLayer], images: int, budget: int = PASS_BYTES) -> Iterator[list[GraphLayer]]:
    """Consecutive groups of layers whose outputs for ``images`` (reference + candidate) fit ``budget``."""
    group: list[GraphLayer] = []
    used = 0
    for layer in layers:
        size = 2 * images * (layer.bytes_per_image or UNKNOWN_LAYER_BYTES)
        if group and used + size > budget:
            yield group
            group, used = [], 0
        group.append(layer)
        used += size
    if group:
        yield group


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def walk(
    tap: LayerTap, inputs: np.ndarray, rule: JumpRule, pass_bytes: int = PASS_BYTES, keep_layers: int = KEEP_LAYERS
) -> LayerWalk:
    """Compare every matched layer of ``tap`` on ``inputs``; name the first whose error jumps."""
    layers = tap.layers()
    errors: dict[str, float] = {}
    records: list[LayerError] = []
    depth = {layer.name: index for index, layer in enumerate(layers)}
    for group in passes(layers, len(inputs), pass_bytes):
        by_name = {layer.name: layer for layer in group}
        for name, ref, cand in tap.run(inputs, [layer.name for layer in group]):
            layer = by_name[name]
            error = spread_normalised_error(ref, cand)
            errors[name] = error
            growth = error_growth(error, [errors.get(parent, 0.0) for parent in layer.inputs])
            records.append(
                LayerError(
                    depth=depth[name],
                    name=name,
                    op=layer.op,
                    module=layer.module,
                    error=_finite(error),
                    cosine=centred_cosine(ref, cand),
                    growth=_finite(growth),
                    nonfinite=nonfinite_count(np.asarray(cand)),
                )
            )
            del ref, cand  # the pass's tensors go as soon as their figures are known
    first = first_jump(records, rule)
    return LayerWalk(layers_total=len(records), layers=cap(records, keep_layers, first), first_jump=first)


def jumps(layer: LayerError, rule: JumpRule) -> bool:
    error = math.inf if layer.error is None else layer.error
    growth = math.inf if layer.growth is None else layer.growth
    return error >= rule.min_error and growth >= rule.min_growth


def first_jump(records: list[LayerError], rule: JumpRule, skip: frozenset[str] = frozenset()) -> LayerError | None:
    """The first layer in depth order that jumps; ``skip`` excludes layers already kept in FP32."""
    return next((r for r in sorted(records, key=lambda r: r.depth) if r.name not in skip and jumps(r, rule)), None)


def cap(records: list[LayerError], limit: int, must_keep: LayerError | None) -> list[LayerError]:
    """At most ``limit`` records: the largest growths (and the first jump), back in depth order."""
    if len(records) <= limit:
        return sorted(records, key=lambda r: r.depth)
    ranked = sorted(records, key=lambda r: -(math.inf if r.growth is None else r.growth))[:limit]
    if must_keep is not None and must_keep not in ranked:
        ranked[-1] = must_keep
    return sorted(ranked, key=lambda r: r.depth)
