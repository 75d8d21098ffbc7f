"""Small inline SVG charts (lines and labelled scatter points) for the HTML report.

Pure Python string building: no plotting library, no JavaScript, so the report stays a
single file that opens offline. Every text is escaped; hover titles use SVG ``<title>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# Inline SVG inside HTML needs no xmlns, which keeps every URL-looking string out of the page.
# Tableau 10: distinguishable, and readable on white.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#d62728")
# After the palette runs out, series repeat its colours with these dash patterns.
DASHES = ("", "6 3", "2 3", "8 3 2 3")

WIDTH, HEIGHT = 720, 380  # line charts; the scatter chart is wider so its point labels find room
SCATTER_WIDTH, SCATTER_HEIGHT = 1100, 480
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 76, 16, 34, 52
LEGEND_MIN, LEGEND_MAX = 150, 250  # the legend takes what its longest entry needs, within these
LEGEND_CHARS = 30  # longer legend entries are clipped with an ellipsis
FONT_PX = 13
CHAR_PX = 7.0  # average glyph width at FONT_PX in a sans-serif font, to size label boxes


def style_for(index: int) -> tuple[str, str]:
    """(colour, dash pattern) of the index-th series."""
    return PALETTE[index % len(PALETTE)], DASHES[(index // len(PALETTE)) % len(DASHES)]


def fmt_number(value: float) -> str:
    """Compact tick text: 0.5, 12, 1,500, 1e-06."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-3:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def linear_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2, 2.5 or 5 x 10^k) covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks, value = [], first
    while value < hi + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks inside [lo, hi] on a log axis; whole decades only when the span is wide."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    multiples = (1,) if len(decades) > 4 else (1, 2, 5)
    ticks = [m * 10.0**d for d in decades for m in multiples if lo <= m * 10.0**d <= hi * (1 + 1e-9)]
    if len(ticks) < 2:  # a narrow span holds no round 1-2-5 value: fall back to linear steps
        ticks = [t for t in linear_ticks(lo, hi, 4) if lo <= t <= hi and t > 0]
    return ticks


@dataclass(frozen=True)
class Scale:
    """Maps data values in [lo, hi] to pixels in [start, end], linearly or logarithmically."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        if self.log:
            lo, hi, value = math.log10(self.lo), math.log10(self.hi), math.log10(value)
        else:
            lo, hi = self.lo, self.hi
        return self.start + (value - lo) / (hi - lo) * (self.end - self.start)


def log_domain(values: list[float], pad: float = 1.25) -> tuple[float, float]:
    """A positive [lo, hi] around ``values`` with some room either side."""
    lo, hi = min(values), max(values)
    return lo / pad, hi * pad


def linear_domain_from_zero(values: list[float]) -> tuple[float, float, list[float]]:
    """[0, a round top] that holds ``values``, and its ticks."""
    top = max(values) if values and max(values) > 0 else 1.0
    ticks = linear_ticks(0.0, top * 1.05)
    return 0.0, ticks[-1], ticks


@dataclass
class Axis:
    label: str
    lo: float
    hi: float
    ticks: list[float]
    log: bool = False
    tick_labels: dict[float, str] = field(default_factory=dict)  # overrides, e.g. the floor shown as "0"

    def text(self, tick: float) -> str:
        return self.tick_labels.get(tick, fmt_number(tick))


@dataclass
class Series:
    """A named line through (x, y) points; ``hollow`` marks points drawn as rings (e.g. parity failed)."""

    name: str
    points: list[tuple[float, float]]
    tooltips: list[str] = field(default_factory=list)
    hollow: list[bool] = field(default_factory=list)


@dataclass
class Point:
    """One labelled scatter point; ``group`` picks its colour and legend entry."""

    x: float
    y: float
    label: str
    group: str
    tooltip: str = ""
    radius: float = 5.0  # a bubble chart sizes its points by a third quantity


@dataclass
class HLine:
    """A dashed horizontal reference line (a tolerance) with a short label."""

    y: float
    label: str


class _Frame:
    """The plot area, its scales, axes and legend; charts add their marks in between."""

    def __init__(
        self,
        title: str,
        x: Axis,
        y: Axis,
        legend: list[tuple[str, str, str]],
        caption: str = "",
        size: tuple[int, int] = (WIDTH, HEIGHT),
    ) -> None:
        self.title, self.x_axis, self.y_axis, self.legend, self.caption = title, x, y, legend, caption
        self.width, self.height = size
        self.left, self.top = MARGIN_LEFT, MARGIN_TOP
        longest = max([len(_clip(name, LEGEND_CHARS)) for name, _, _ in legend] + [0])
        self.legend_width = min(LEGEND_MAX, max(LEGEND_MIN, round(48 + longest * CHAR_PX)))
        self.right = self.width - MARGIN_RIGHT - self.legend_width
        self.bottom = self.height - MARGIN_BOTTOM
        self.x = Scale(x.lo, x.hi, self.left, self.right, x.log)
        self.y = Scale(y.lo, y.hi, self.bottom, self.top, y.log)

    def open(self, kind: str) -> list[str]:
        parts = [
            f'<svg class="chart {kind}" viewBox="0 0 {self.width} {self.height}" '
            f'role="img" aria-label="{escape(self.title)}" font-family="sans-serif" font-size="{FONT_PX}">',
            f"<title>{escape(self.title)}</title>",
            f'<rect x="0" y="0" width="{self.width}" height="{self.height}" fill="#fff"/>',
            f'<text class="chart-title" x="{self.left}" y="{self.top - 14}" font-size="14" '
            f'font-weight="bold">{escape(self.title)}</text>',
        ]
        parts += self._grid_and_axes()
        return parts

    def _grid_and_axes(self) -> list[str]:
        parts = ['<g class="axes" stroke="#ccc" stroke-width="1">']
        for tick in self.x_axis.ticks:
            px = self.x(tick)
            parts.append(f'<line x1="{px:.1f}" y1="{self.top}" x2="{px:.1f}" y2="{self.bottom}" stroke="#eee"/>')
        for tick in self.y_axis.ticks:
            py = self.y(tick)
            parts.append(f'<line x1="{self.left}" y1="{py:.1f}" x2="{self.right}" y2="{py:.1f}" stroke="#eee"/>')
        parts.append(
            f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
            f'height="{self.bottom - self.top}" fill="none" stroke="#888"/>'
        )
        parts.append("</g>")
        parts.append('<g class="ticks" fill="#333">')
        for tick in self.x_axis.ticks:
            parts.append(
                f'<text x="{self.x(tick):.1f}" y="{self.bottom + 16}" text-anchor="middle">'
                f"{escape(self.x_axis.text(tick))}</text>"
            )
        for tick in self.y_axis.ticks:
            parts.append(
                f'<text x="{self.left - 6}" y="{self.y(tick) + 4:.1f}" text-anchor="end">'
                f"{escape(self.y_axis.text(tick))}</text>"
            )
        parts.append("</g>")
        middle_x, middle_y = (self.left + self.right) / 2, (self.top + self.bottom) / 2
        parts.append(
            f'<text class="x-label" x="{middle_x:.0f}" y="{self.height - 14}" text-anchor="middle">'
            f"{escape(self.x_axis.label)}</text>"
        )
        parts.append(
            f'<text class="y-label" x="16" y="{middle_y:.0f}" text-anchor="middle" '
            f'transform="rotate(-90 16 {middle_y:.0f})">{escape(self.y_axis.label)}</text>'
        )
        return parts

    def close(self) -> list[str]:
        parts = ['<g class="legend">']
        x0, y = self.right + 18, self.top + 6
        for name, colour, dash in self.legend:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<g class="legend-entry"><line x1="{x0}" y1="{y}" x2="{x0 + 22}" y2="{y}" stroke="{colour}" '
                f'stroke-width="2.5"{dash_attr}/><circle cx="{x0 + 11}" cy="{y}" r="3.5" fill="{colour}"/>'
                f'<text x="{x0 + 30}" y="{y + 4}">{escape(_clip(name, LEGEND_CHARS))}</text></g>'
            )
            y += 20
        if self.caption:
            for line in _wrap(self.caption, int((self.legend_width - 24) / (CHAR_PX * 11 / FONT_PX))):
                parts.append(
                    f'<text class="legend-note" x="{x0}" y="{y + 6}" fill="#555" font-size="11">{escape(line)}</text>'
                )
                y += 15
        parts.append("</g></svg>")
        return parts


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def line_chart(title: str, series: list[Series], x: Axis, y: Axis, caption: str = "") -> str:
    """One polyline with point markers per series, and a legend."""
    legend = [(s.name, *style_for(i)) for i, s in enumerate(series)]
    frame = _Frame(title, x, y, legend, caption)
    parts = frame.open("line-chart")
    for index, item in enumerate(series):
        colour, dash = style_for(index)
        points = sorted(
            zip(item.points, item.tooltips or [""] * len(item.points), item.hollow or [False] * len(item.points))
        )
        coords = " ".join(f"{frame.x(px):.1f},{frame.y(py):.1f}" for (px, py), _, _ in points)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<g class="series" data-name="{escape(item.name)}">')
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2.5"{dash_attr}/>')
        for (px, py), tooltip, hollow in points:
            fill = "#fff" if hollow else colour
            parts.append(
                f'<circle class="point" cx="{frame.x(px):.1f}" cy="{frame.y(py):.1f}" r="4.5" '
                f'fill="{fill}" stroke="{colour}" stroke-width="2"><title>{escape(tooltip)}</title></circle>'
            )
        parts.append("</g>")
    return "\n".join(parts + frame.close())


def scatter_chart(
    title: str,
    points: list[Point],
    colours: dict[str, str],
    x: Axis,
    y: Axis,
    lines: Sequence[HLine] = (),
    caption: str = "",
) -> str:
    """Labelled points coloured by group, optional dashed reference lines, and a legend of groups."""
    legend = [(group, colour, "") for group, colour in colours.items()]
    frame = _Frame(title, x, y, legend, caption, (SCATTER_WIDTH, SCATTER_HEIGHT))
    parts = frame.open("scatter-chart")
    for line in lines:
        py = frame.y(line.y)
        parts.append(
            f'<g class="reference-line"><line x1="{frame.left}" y1="{py:.1f}" x2="{frame.right}" '
            f'y2="{py:.1f}" stroke="#999" stroke-dasharray="5 4"/><text x="{frame.right - 4}" '
            f'y="{py - 4:.1f}" text-anchor="end" fill="#777" font-size="11">{escape(line.label)}</text></g>'
        )
    # Labels keep clear of every marker as well as of each other.
    placed = [
        (frame.x(p.x) - p.radius - 1, frame.y(p.y) - p.radius - 1, 2 * p.radius + 2, 2 * p.radius + 2) for p in points
    ]
    for point in sorted(points, key=lambda p: (p.x, p.y)):
        px, py = frame.x(point.x), frame.y(point.y)
        colour = colours.get(point.group, PALETTE[-2])
        parts.append(
            f'<g class="point" data-group="{escape(point.group)}">'
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{point.radius:.1f}" fill="{colour}" fill-opacity="0.85" '
            f'stroke="#fff">'
            f"<title>{escape(point.tooltip or point.label)}</title></circle>"
        )
        label_x, label_y, anchor, leader = _place_label(point.label, px, py, frame, placed)
        if leader:  # a label moved away from its marker gets a thin line back to it
            parts.append(
                f'<line class="leader" x1="{px:.1f}" y1="{py:.1f}" x2="{label_x:.1f}" y2="{label_y - 4:.1f}" '
                f'stroke="#aaa" stroke-width="0.8"/>'
            )
        parts.append(
            f'<text class="point-label" x="{label_x:.1f}" y="{label_y:.1f}" text-anchor="{anchor}" '
            f'font-size="11" fill="#222">{escape(point.label)}</text></g>'
        )
    return "\n".join(parts + frame.close())


# Spots tried around a marker, nearest first: (dx, baseline dy, text-anchor).
_LABEL_SPOTS = [
    (dx, dy, anchor) for dy in (4, -8, 16, -20, 28, -32, 40, -44, 52) for dx, anchor in ((8, "start"), (-8, "end"))
]
_LEADER_FROM_DY = 20  # labels this far above or below their marker get a leader line


def _place_label(
    label: str, px: float, py: float, frame: _Frame, placed: list[tuple[float, float, float, float]]
) -> tuple[float, float, str, bool]:
    """(x, baseline, anchor, needs a leader) of the nearest spot where the label overlaps nothing placed."""
    width, height = len(label) * CHAR_PX * 11 / FONT_PX, 12.0
    fallback = None
    for dx, dy, anchor in _LABEL_SPOTS:
        x, baseline = px + dx, py + dy
        box = (x if anchor == "start" else x - width, baseline - height + 2, width, height)
        inside = (
            frame.left <= box[0]
            and box[0] + width <= frame.right
            and frame.top <= box[1]
            and box[1] + height <= frame.bottom
        )
        if not inside:
            continue
        fallback = fallback or (x, baseline, anchor, box, abs(dy) >= _LEADER_FROM_DY)
        if not any(_overlaps(box, other) for other in placed):
            placed.append(box)
            return x, baseline, anchor, abs(dy) >= _LEADER_FROM_DY
    # Nowhere free: overlap at the nearest spot rather than drop the label (the tooltip has it too).
    x, baseline, anchor, box, leader = fallback or (px + 8, py + 4, "start", (px + 8, py - 6, width, height), False)
    placed.append(box)
    return x, baseline, anchor, leader


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
