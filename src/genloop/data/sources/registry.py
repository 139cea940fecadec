"""Where records come from: a registry of named sources.

A source is a function `(workspace, cfg, problems) -> Iterator[Record]` that yields
records lazily (memory stays bounded however large the folder), honours
`cfg.limit`, and appends one human-readable message per file it had to refuse to
`problems` instead of failing the whole collection::

    @register_source("mnist-5k")
    def mnist_5k(workspace, cfg, problems): ...

Built-ins register themselves the same way when `genloop.data.sources` is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.errors import DataError
from genloop.workspace import Workspace

# (workspace, [collect] config, problems to append to) -> records, lazily
Source = Callable[[Workspace, CollectConfig, list[str]], Iterator[Record]]


_SOURCES: dict[str, Source] = {}


def register_source(name: str) -> Callable[[Source], Source]:
    """Register a source under `name` (the value of `[collect].source`)."""

    def decorator(source: Source) -> Source:
        if name in _SOURCES and _SOURCES[name] is not source:
            raise ValueError(f"a data source named {name!r} is already registered")
        _SOURCES[name] = source
        return source

    return decorator


def known_sources() -> list[str]:
    _load_builtins()
    return sorted(_SOURCES)


def get_source(name: str) -> Source:
    """The source registered as `name`; a DataError listing the known ones otherwise."""
    _load_builtins()
    try:
        return _SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(_SOURCES))
        raise DataError(
            f"unknown data source {name!r} in [collect].source (known: {known})",
            hint="use `folder` with [collect].path for your own files, or `mnist-5k` for built-in digits",
        ) from None


def _load_builtins() -> None:
    # Imported here, not at module top, because the built-ins import this module to register.
    from genloop.data.sources import corpora, dialogues, folder, hf_disk, idx, mnist, music, table  # noqa: F401
