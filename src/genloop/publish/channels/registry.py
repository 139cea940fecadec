"""Channels: where published content goes. One-method contract, one small registry.

    class Channel(Protocol):
        name: str
        def publish(self, catalog, item_id) -> str   # the publication id

Built-in: `gallery` (the web console's public gallery). Folder export, webhooks and
feeds arrive with the serve issue and register the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from genloop.catalog import Catalog
from genloop.errors import GenloopError


class Channel(Protocol):
    name: str

    def publish(self, catalog: Catalog, content_item_id: str) -> str: ...


_CHANNELS: dict[str, Callable[[], Channel]] = {}


def register_channel(name: str) -> Callable[[Callable[[], Channel]], Callable[[], Channel]]:
    def decorate(factory: Callable[[], Channel]) -> Callable[[], Channel]:
        _CHANNELS[name] = factory
        return factory

    return decorate


def get_channel(name: str) -> Channel:
    import genloop.publish.channels.gallery  # noqa: F401  (registers the built-in)

    if name not in _CHANNELS:
        raise GenloopError(
            f"unknown publication channel {name!r}",
            hint=f"available channels: {', '.join(sorted(_CHANNELS))}; set [publish].channel in genloop.toml",
        )
    return _CHANNELS[name]()
