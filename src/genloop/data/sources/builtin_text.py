"""Shared plumbing of the built-in text corpora: finding them, and mixing their parts.

The corpora ship inside Python or Debian packages (see DATA.md), so they load with
the network blocked. When one is missing the user gets the exact install line rather
than an ImportError. Corpora are read part by part (a play, a fortune file, a topic)
and the parts are interleaved, so `limit = 200` gives a sample of every part rather
than 200 paragraphs of the first play.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.errors import DataError

T = TypeVar("T")


def package_dir(module: str, *, source: str, install: str) -> Path:
    """The folder of an installed Python package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the {source!r} source needs the Python package providing `{module}`, which is not installed",
            hint=f"install it: {install}",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def system_files(paths: Iterable[Path], *, source: str, install: str) -> list[Path]:
    """`paths` when every one exists; a DataError with the apt-get line otherwise."""
    files = list(paths)
    missing = [path for path in files if not path.is_file()]
    if missing or not files:
        shown = missing[0] if missing else "its files"
        raise DataError(
            f"the {source!r} source reads {shown}, which is not installed",
            hint=f"install it: {install}",
        )
    return files


def interleave(parts: Iterable[Iterator[T]]) -> Iterator[T]:
    """One item from each part in turn until every part is exhausted (lazy)."""
    active = list(parts)
    while active:
        still_active = []
        for part in active:
            item = next(part, None)
            if item is not None:
                yield item
                still_active.append(part)
        active = still_active


def limited(records: Iterator[Record], cfg: CollectConfig) -> Iterator[Record]:
    for count, record in enumerate(records):
        if cfg.limit is not None and count >= cfg.limit:
            return
        yield record


def text_record(
    text: str, *, label: str, source: str, license: str, cfg: CollectConfig, meta: dict[str, Any]
) -> Record:
    return Record.create(
        text.encode("utf-8"),
        modality="text",
        label=label,
        source=source,
        license=license,
        test_fraction=cfg.test_fraction,
        meta=meta,
    )
