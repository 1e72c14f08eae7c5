"""A trait's run history as an SVG line chart, drawn on the server (no front-end build).

The y axis is logarithmic (``log10(1 + n)``): a 10M-row first sync and a run that changed 3
rows both stay readable. Each point is a ``<circle>`` carrying its run, series and value as
data attributes (what the browser test reads); the guard's exit limit (``max_exit_ratio``
of the snapshot) and change limit are dashed steps. ``console.js`` adds the hover card.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

WIDTH, HEIGHT = 960, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 36
COLORS = {
    "rows": "#94a3b8", "added": "#16a34a", "changed": "#2563eb", "exited": "#ea580c", "sent": "#7c3aed", "failed": "#dc2626",
}
LIMIT_COLORS = {"exit_limit": "#ea580c", "change_limit": "#2563eb"}


def _y(value: float, top_value: float) -> float:
    span = math.log10(1 + top_value) or 1.0
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - math.log10(1 + max(value, 0)) / span)


def render(chart: dict[str, Any]) -> str:
    points: list[dict[str, Any]] = chart["points"]
    series: list[str] = chart["series"]
    if not points:
        return '<p class="empty">No finished runs yet: the chart appears after the first run.</p>'
    values = [p[s] for p in points for s in series] + [p[k] or 0 for p in points for k in LIMIT_COLORS]
    top_value = float(max([*values, 1])) * 1.25  # headroom above the highest point
    inner = WIDTH - LEFT - RIGHT
    step = inner / max(len(points) - 1, 1)

    def x(index: int) -> float:
        return LEFT + (index * step if len(points) > 1 else inner / 2)

    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="run history chart" '
        f'data-points="{len(points)}">'
    ]
    # grid: powers of ten
    tick = 0
    while tick <= top_value:
        y = _y(tick, top_value)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{_short(tick)}</text>')
        tick = 1 if tick == 0 else tick * 10
    # x labels: a few dates
    last = len(points) - 1
    ticks = [i for i in range(0, last, max(1, len(points) // 6)) if i == 0 or x(last) - x(i) >= 110] + ([last] if last else [])
    for index in ticks:
        label = escape(str(points[index]["started_at"])[5:16].replace("T", " "))
        anchor = "start" if index == 0 else "end" if index == len(points) - 1 else "middle"
        out.append(f'<text class="axis" x="{x(index):.1f}" y="{HEIGHT - 12}" text-anchor="{anchor}">{label}</text>')
    # guard limits as dashed steps
    for key, color in LIMIT_COLORS.items():
        path = _step_path([(x(i), p[key]) for i, p in enumerate(points)], top_value, max(step / 2, 6))
        if path:
            out.append(f'<path class="limit {key}" d="{path}" stroke="{color}" data-series="{key}"/>')
    # the series
    for name in series:
        coords = [(x(i), _y(p[name], top_value)) for i, p in enumerate(points)]
        d = " ".join(f"{'M' if i == 0 else 'L'}{cx:.1f},{cy:.1f}" for i, (cx, cy) in enumerate(coords))
        out.append(f'<path class="line s-{name}" d="{d}" stroke="{COLORS[name]}" data-series="{name}"/>')
        radius = 3.2 if len(points) <= 60 else 1.6
        for p, (cx, cy) in zip(points, coords, strict=True):
            out.append(
                f'<circle class="pt s-{name}" cx="{cx:.1f}" cy="{cy:.1f}" r="{radius}" fill="{COLORS[name]}" '
                f'data-run="{escape(p["run_id"])}" data-series="{name}" data-value="{int(p[name])}"/>'
            )
    # hover targets, one per run
    half = max(step / 2, 4)
    for i, p in enumerate(points):
        out.append(
            f'<rect class="hover" x="{x(i) - half:.1f}" y="{TOP}" width="{2 * half:.1f}" height="{HEIGHT - TOP - BOTTOM}" '
            f'data-index="{i}" data-run="{escape(p["run_id"])}" data-status="{escape(p["status"])}"/>'
        )
    out.append("</svg>")
    return "".join(out)


def _step_path(values: list[tuple[float, Any]], top_value: float, half: float) -> str:
    """A level segment centred on each point that has a limit, joined to its neighbour's."""
    parts: list[str] = []
    previous: float | None = None
    for cx, value in values:
        if value is None:
            previous = None
            continue
        y = _y(float(value), top_value)
        left, right = max(cx - half, LEFT), min(cx + half, WIDTH - RIGHT)
        parts.append(f"{'L' if previous is not None else 'M'}{left:.1f},{y:.1f} L{right:.1f},{y:.1f}")
        previous = y
    return " ".join(parts)


def _short(n: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:g}{suffix}"
    return f"{n:g}"


def legend() -> list[dict[str, str]]:
    return [{"name": n, "color": c} for n, c in COLORS.items()]
