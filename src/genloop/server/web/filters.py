"""Jinja2 filters and globals the console templates use: numbers, times, ids, route paths, charts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.runtime import Context


def percent(value: float | None, digits: int = 0) -> str:
    """0.4567 → '46%'; None (nobody voted yet) → '–'."""
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def when(value: datetime | str | None) -> str:
    """A UTC timestamp as '2025-11-28 15:34 UTC'."""
    if value is None:
        return "–"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def interval(bounds: tuple[float, float] | None, kind: str = "percent") -> str:
    """(0.12, 0.34) → '12–34%' (or '3.1–4.2' for ratings); None → '–'."""
    if bounds is None:
        return "–"
    if kind == "percent":
        return f"{100 * bounds[0]:.0f}–{100 * bounds[1]:.0f}%"
    return f"{bounds[0]:.1f}–{bounds[1]:.1f}"


def short_id(value: str | None, length: int = 10) -> str:
    return "" if value is None else value[:length]


@pass_context
def path_for(context: Context, name: str, /, **params: Any) -> str:
    """The path of a named route ('/content/abc'): relative to the host, so proxies keep working."""
    return str(context["request"].app.url_path_for(name, **params))


def register_filters(env: Environment) -> None:
    env.filters.update(percent=percent, when=when, short_id=short_id, interval=interval)
    env.globals["path_for"] = path_for
    env.globals["line_chart"] = line_chart


# -- a tiny server-side SVG line chart (no chart library, nothing from a CDN) -------------------

MAX_DOTS = 40
CHART_COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4d7c0f", "#be185d")


@dataclass(frozen=True)
class ChartLine:
    name: str
    colour: str
    points: str
    """SVG polyline points, "x,y x,y ..." in the chart's pixel space."""
    last: float
    dots: list[tuple[str, str]]
    """Markers at each point ("x", "y") when there are few (a single day is otherwise invisible)."""


@dataclass(frozen=True)
class Chart:
    """Geometry for `_macros.html:line_chart`: lines, axis ticks (pixel, text) and the plot box."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    lines: list[ChartLine]
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    empty: bool


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high == low:
        return [low]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def _tick_text(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e5 else f"{value:.2e}"


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    *,
    width: int = 640,
    height: int = 240,
    x_labels: dict[float, str] | None = None,
    y_range: tuple[float, float] | None = None,
) -> Chart:
    """Scale `{name: [(x, y), ...]}` into a `width`×`height` box; x grows right, y grows up."""
    left, right, top, bottom = 52, width - 12, 12, height - 28
    points = [p for values in series.values() for p in values]
    if not points:
        return Chart(width, height, left, right, top, bottom, [], [], [], True)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = y_range or (min(ys), max(ys))
    if y_high == y_low:
        y_low, y_high = y_low - 1, y_high + 1
    x_span = (x_high - x_low) or 1.0

    def px(x: float) -> float:
        return left + (x - x_low) / x_span * (right - left)

    def py(y: float) -> float:
        return bottom - (y - y_low) / (y_high - y_low) * (bottom - top)

    lines = [
        ChartLine(
            name,
            CHART_COLOURS[index % len(CHART_COLOURS)],
            " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in values),
            values[-1][1],
            [(f"{px(x):.1f}", f"{py(y):.1f}") for x, y in values] if len(values) <= MAX_DOTS else [],
        )
        for index, (name, values) in enumerate(series.items())
        if values
    ]
    x_values = sorted(x_labels) if x_labels else _ticks(x_low, x_high)
    if not x_labels and all(float(x).is_integer() for x in xs):  # steps: whole tick values
        x_values = sorted({float(round(x)) for x in x_values})
    if len(x_values) > 6:  # keep the labels readable
        x_values = x_values[:: math.ceil(len(x_values) / 6)]
    x_ticks = [(px(x), (x_labels or {}).get(x, _tick_text(x))) for x in x_values]
    y_ticks = [(py(y), _tick_text(y)) for y in _ticks(y_low, y_high)]
    return Chart(width, height, left, right, top, bottom, lines, x_ticks, y_ticks, False)
