"""Jinja2 filters and globals the console templates use: numbers, times, ids, route paths."""

from __future__ import annotations

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


def short_id(value: str | None, length: int = 10) -> str:
    return "" if value is None else value[:length]


@pass_context
def path_for(context: Context, name: str, /, **params: Any) -> str:
    """The path of a named route ('/content/abc'): relative to the host, so proxies keep working."""
    return str(context["request"].app.url_path_for(name, **params))


def register_filters(env: Environment) -> None:
    env.filters.update(percent=percent, when=when, short_id=short_id)
    env.globals["path_for"] = path_for
