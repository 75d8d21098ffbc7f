"""Text renderings of a Triage for the terminal: the per-layer table, the verdict lines, the fix rows."""

from __future__ import annotations

from tabulate import tabulate

from deploybench.results import Status
from deploybench.triage.fix import speed_cost
from deploybench.triage.report import LayerError, Triage


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _error(layer: LayerError) -> str:
    return f"NaN/Inf x{layer.nonfinite}" if layer.error is None else f"{layer.error:.3g}"


def _growth(layer: LayerError) -> str:
    return "inf" if layer.growth is None else f"{layer.growth:.3g}x"


def layer_table(result: Triage) -> str:
    jump = result.first_jump.name if result.first_jump else None
    rows = [
        [
            "<- first jump" if layer.name == jump else "",
            layer.depth,
            layer.name,
            layer.module or "-",
            layer.op,
            _error(layer),
            _number(layer.cosine, 6),
            _growth(layer),
        ]
        for layer in result.layers
    ]
    headers = ["", "depth", "layer", "module", "op", "error/spread", "centred cos", "growth"]
    return tabulate(rows, headers=headers, disable_numparse=True)


def summary(result: Triage) -> str:
    lines = [
        f"{result.model} {result.format} {result.precision} in {result.runtime}: {result.layers_total} layers "
        f"compared with {result.reference} on {result.images} images"
    ]
    if result.layers_total > len(result.layers):
        lines.append(f"(showing the {len(result.layers)} layers whose error grows most)")
    lines.append(f"end-to-end parity: {result.verdict}")
    if result.first_jump:
        layer = result.first_jump
        lines.append(
            f"first jump: {layer.where}, {layer.op}: error {_error(layer)} of its spread, {_growth(layer)} its inputs'"
        )
    else:
        lines.append(
            f"no layer's error jumps (>= {result.rule.min_error:g} and >= {result.rule.min_growth:g}x its inputs')"
        )
    if result.remedy:
        remedy = result.remedy
        named = ", ".join(f"{name} ({module})" if module else name for name, module in zip(remedy.keep, remedy.modules))
        lines += [
            f"keep in FP32: {named}  [{len(remedy.keep)} layer(s), {remedy.trials} trial(s)]",
            f"  via {remedy.mechanism}",
            f"  parity with them kept: {remedy.verdict_after}",
            f"  build it: {remedy.export_command}",
        ]
    elif result.remedy_note:
        lines.append(f"remedy: {result.remedy_note}")
    return "\n".join(lines)


def fix_table(result: Triage) -> str:
    rows = [
        [
            row.variant,
            row.keep,
            row.status if row.status != Status.OK else f"{row.verdict} ({row.key_figure})",
            _number(row.ms_per_image, 4),
            _number(row.throughput, 4),
            "-" if row.cv is None else f"{row.cv:.0%}",
            _number(row.artifact_mb, 3),
        ]
        for row in result.fix
    ]
    table = tabulate(
        rows, headers=["", "layers in FP32", "parity", "ms/img", "img/s", "cv", "artifact MB"], disable_numparse=True
    )
    cost = speed_cost(result.fix)
    return table + ("" if cost is None else f"\nspeed cost of the fix: {cost:.2f}x the ms/img of before")
