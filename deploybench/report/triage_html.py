"""The triage part of a row's details in the HTML report: error by layer depth, the first jump, the remedy."""

from __future__ import annotations

from html import escape
from typing import Any

from deploybench.report import svg
from deploybench.triage.report import LayerError, Triage

FLOOR = 1e-6  # errors below this sit on the axis floor of the log plot


def error_by_depth_chart(result: Triage) -> str:
    """Log-scale error per layer in depth order; NaN/Inf layers are drawn as rings at the top."""
    finite = [layer.error for layer in result.layers if layer.error is not None]
    lo, hi = svg.log_domain([max(e, FLOOR) for e in finite] or [FLOOR, 1.0])
    top = hi * 4 if any(layer.error is None for layer in result.layers) else hi
    points, tooltips, hollow = [], [], []
    for layer in result.layers:
        value = top / 1.25 if layer.error is None else max(layer.error, FLOOR)
        points.append((float(layer.depth), value))
        tooltips.append(_tooltip(layer))
        hollow.append(layer.error is None)
    depths = [layer.depth for layer in result.layers] or [0]
    x = svg.Axis(
        "layer depth (reference graph order)",
        min(depths) - 0.5,
        max(depths) + 0.5,
        svg.linear_ticks(min(depths), max(depths)),
    )
    y = svg.Axis("error / reference spread", lo, top, svg.log_ticks(lo, top), log=True)
    series = svg.Series(f"{result.format} {result.precision}", points, tooltips, hollow)
    caption = "rings: NaN/Inf in the layer's output" if any(hollow) else ""
    return svg.line_chart(f"{result.model}: error by layer ({result.runtime})", [series], x, y, caption)


def _tooltip(layer: LayerError) -> str:
    error = "NaN/Inf" if layer.error is None else f"{layer.error:.3g}"
    growth = "inf" if layer.growth is None else f"{layer.growth:.3g}x"
    return f"{layer.depth}: {layer.where} [{layer.op}] error {error}, growth {growth}"


def triage_card(data: dict[str, Any]) -> str:
    """A wide card with the chart, the first jump and the remedy (or why there is none)."""
    result = Triage.from_dict(data)
    lines = [
        f"<p>{result.layers_total} layers compared with {escape(result.reference)} on {result.images} images; "
        f"end-to-end parity: {escape(result.verdict)}</p>"
    ]
    if result.first_jump:
        lines.append(f"<p><b>First jump:</b> {escape(result.first_jump.where)} ({escape(result.first_jump.op)})</p>")
    if result.remedy:
        kept = ", ".join(escape(name) for name in result.remedy.keep)
        lines.append(
            f"<p><b>Keep in FP32:</b> {kept} — parity then: {escape(result.remedy.verdict_after)}</p>"
            f"<pre>{escape(result.remedy.export_command)}</pre>"
        )
    elif result.remedy_note:
        lines.append(f"<p><b>Remedy:</b> {escape(result.remedy_note)}</p>")
    return (
        f'<div class="card wide triage"><h3>Precision triage</h3>{"".join(lines)}{error_by_depth_chart(result)}</div>'
    )
