"""Line charts as inline SVG, drawn on the server: no script, no chart library.

A chart is one series of (time, value) over a fixed window. Where two points lie further
apart than GAP_FACTOR times the usual interval the line breaks: the device sent nothing
then (offline, or the hub was down), and a straight line would claim otherwise.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 170
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 24, 26  # margins for the labels
GAP_FACTOR = 3.0
TICKS = 4  # time labels along the bottom, besides the start


@dataclass(frozen=True, slots=True)
class Series:
    """One chart's data: values at times (naive UTC), oldest first."""

    title: str
    unit: str
    points: Sequence[tuple[datetime, float]]


def _segments(points: Sequence[tuple[datetime, float]]) -> list[list[tuple[datetime, float]]]:
    """The points split where the device went quiet for longer than usual."""
    if len(points) < 2:
        return [list(points)] if points else []
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(points)]
    usual = max(statistics.median(gaps), 1.0)
    segments: list[list[tuple[datetime, float]]] = [[points[0]]]
    for gap, point in zip(gaps, points[1:], strict=True):
        if gap > usual * GAP_FACTOR:
            segments.append([])
        segments[-1].append(point)
    return segments


def _label(value: float) -> str:
    if abs(value) >= 10 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.1f}"


def line_chart(series: Series, *, start: datetime, end: datetime) -> Markup:
    """The series between `start` and `end` as an accessible SVG line chart."""
    title = escape(series.title)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max((end - start).total_seconds(), 1.0)
    values = [value for _, value in series.points]
    low = min([0.0, *values])
    high = max([1.0, *values])
    if high == low:
        high = low + 1.0

    def x(at: datetime) -> float:
        return LEFT + plot_w * min(max((at - start).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - low) / (high - low))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{title} over time" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{title}</title>",
        f'<text class="chart-title" x="{LEFT}" y="15">{title}'
        f"{escape(f' ({series.unit})' if series.unit else '')}</text>",
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for value in (low, (low + high) / 2, high):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}"/><text class="axis" x="{LEFT - 6}" y="{y(value) + 4:.1f}" '
            f'text-anchor="end">{escape(_label(value))}</text>'
        )
    step = (end - start) / TICKS
    for tick in range(TICKS + 1):
        at = start + step * tick
        anchor = "start" if tick == 0 else "end" if tick == TICKS else "middle"
        fmt = "%H:%M" if end - start <= timedelta(days=1) else "%d %b %H:%M"
        parts.append(
            f'<text class="axis" x="{x(at):.1f}" y="{HEIGHT - 8}" '
            f'text-anchor="{anchor}">{at.strftime(fmt)}</text>'
        )
    for segment in _segments(series.points):
        coords = " ".join(f"{x(at):.1f},{y(value):.1f}" for at, value in segment)
        if len(segment) == 1:
            at, value = segment[0]
            parts.append(f'<circle class="dot" cx="{x(at):.1f}" cy="{y(value):.1f}" r="2.5"/>')
        else:
            parts.append(f'<polyline class="line" points="{coords}"/>')
    if not series.points:
        parts.append(
            f'<text class="empty" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" '
            'text-anchor="middle">no telemetry in this window</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
