"""Small charts drawn as inline SVG (no script, no external asset): bars, stacked bars, a trend, a gauge.

Each function returns the markup of one ``<svg>`` element with a ``<title>`` for screen readers;
the HTML template marks it safe. Colours come from one palette per kind of discrepancy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["KIND_COLOURS", "bar_chart", "error_gauge", "stacked_bars", "trend_chart"]

KIND_COLOURS = {
    "missing_in_hub": "#c0392b",
    "content_mismatch": "#8e44ad",
    "hub_stale": "#e67e22",
    "missing_in_source": "#2980b9",
    "source_stale": "#16a085",
    "duplicate_in_source": "#7f8c8d",
    "invalid_manifest_row": "#95a5a6",
}
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _svg(width: int, height: int, title: str, body: str) -> str:
    return (
        f'<svg class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>{body}</svg>'
    )


def bar_chart(title: str, rows: Sequence[tuple[str, int, str]], width: int = 560) -> str:
    """Horizontal bars: one ``(label, value, colour)`` per row, the value written at the bar's end."""
    label_w, row_h = 220, 26
    height = max(1, len(rows)) * row_h + 10
    top = max((value for _, value, _ in rows), default=0) or 1
    parts = []
    for i, (label, value, colour) in enumerate(rows):
        y = 5 + i * row_h
        bar = round((width - label_w - 60) * value / top)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" {_FONT}>{escape(label)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{max(bar, 1 if value else 0)}" height="18" '
            f'fill="{colour}" rx="2"/>'
            f'<text x="{label_w + bar + 6}" y="{y + 16}" {_FONT}>{value:,}</text>'
        )
    return _svg(width, height, title, "".join(parts))


def stacked_bars(title: str, table: Mapping[str, Mapping[str, int]], width: int = 560) -> str:
    """One horizontal bar per row of ``table`` (e.g. a country), split by kind of discrepancy."""
    label_w, row_h = 110, 26
    rows = sorted(table.items(), key=lambda item: -sum(item[1].values()))[:12]
    height = max(1, len(rows)) * row_h + 10
    top = max((sum(counts.values()) for _, counts in rows), default=0) or 1
    parts = []
    for i, (label, counts) in enumerate(rows):
        y, x = 5 + i * row_h, float(label_w)
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" {_FONT}>{escape(label)}</text>')
        for kind, colour in KIND_COLOURS.items():
            value = counts.get(kind, 0)
            if value:
                w = (width - label_w - 60) * value / top
                parts.append(
                    f'<rect class="bar" x="{x:.1f}" y="{y + 3}" width="{max(w, 1):.1f}" height="18" '
                    f'fill="{colour}"><title>{escape(kind)}: {value:,}</title></rect>'
                )
                x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 16}" {_FONT}>{sum(counts.values()):,}</text>')
    return _svg(width, height, title, "".join(parts))


def trend_chart(title: str, points: Sequence[tuple[str, int]], width: int = 560, height: int = 180) -> str:
    """Discrepancies per run as a line with dots, oldest run on the left."""
    left, bottom, top_pad = 40, 30, 14
    top = max((value for _, value in points), default=0) or 1
    n = len(points)
    step = (width - left - 20) / max(n - 1, 1)
    coords = [
        (left + i * step, top_pad + (height - bottom - top_pad) * (1 - value / top))
        for i, (_, value) in enumerate(points)
    ]
    parts = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" {_FONT}>{top:,}</text>',
        f'<text x="{left - 6}" y="{height - bottom + 4}" text-anchor="end" {_FONT}>0</text>',
    ]
    if n > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(
            f'<polyline class="trend" points="{path}" fill="none" stroke="#2c3e50" stroke-width="2"/>'
        )
    for (label, value), (x, y) in zip(points, coords, strict=True):
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#2c3e50">'
            f"<title>{escape(label)}: {value:,}</title></circle>"
        )
    if points:
        parts.append(f'<text x="{left}" y="{height - 8}" {_FONT}>{escape(points[0][0])}</text>')
        last = escape(points[-1][0])
        parts.append(f'<text x="{width - 10}" y="{height - 8}" text-anchor="end" {_FONT}>{last}</text>')
    return _svg(width, height, title, "".join(parts))


def error_gauge(title: str, rate: float | None, line: float, width: int = 560) -> str:
    """The error rate as a bar on a 0–(3 × line) scale with the platform's line marked."""
    height, left, right = 70, 10, 10
    scale = max(line * 3, (rate or 0) * 1.1)
    usable = width - left - right
    x_line = left + usable * line / scale
    colour = "#27ae60" if rate is not None and rate <= line else "#c0392b"
    filled = usable * (rate or 0) / scale
    parts = [
        f'<rect x="{left}" y="18" width="{usable}" height="22" fill="#ecf0f1" rx="3"/>',
        f'<rect class="bar" x="{left}" y="18" width="{filled:.1f}" height="22" fill="{colour}" rx="3"/>',
        f'<line x1="{x_line:.1f}" y1="10" x2="{x_line:.1f}" y2="48" stroke="#2c3e50" stroke-width="2" '
        'stroke-dasharray="4 2"/>',
        f'<text x="{x_line + 4:.1f}" y="60" {_FONT}>{line:.0%} line</text>',
    ]
    return _svg(width, height, title, "".join(parts))
