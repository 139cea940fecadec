"""Real text (Debian fortunes, Tang poems) as short lists and as text dataset versions."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from genloop.catalog import Catalog
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.workspace import Workspace

FORTUNES = Path("/usr/share/games/fortunes")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@cache
def _entries(name: str) -> tuple[str, ...]:
    path = FORTUNES / name
    if not path.is_file():
        pytest.skip(f"{path} is missing: apt-get install fortunes fortunes-zh")
    text = _ANSI.sub("", path.read_text(encoding="utf-8", errors="replace"))
    return tuple(entry.strip() for entry in text.split("\n%\n") if entry.strip())


def fortune_texts(max_chars: int = 4000, *, name: str = "fortunes") -> list[str]:
    """The first entries of a fortune file, at most `max_chars` characters in all."""
    texts, total = [], 0
    for entry in _entries(name):
        if total + len(entry) > max_chars:
            break
        texts.append(entry)
        total += len(entry)
    return texts


def text_dataset(
    workspace: Workspace,
    catalog: Catalog,
    texts: list[str],
    *,
    name: str = "texts",
    test_fraction: float = 0.2,
    source: str = "fortunes",
) -> DatasetHandle:
    """A text dataset version of `texts` (split by content hash, like `collect` does)."""
    records = [
        Record.create(
            text.encode("utf-8"),
            modality="text",
            label=None,
            source=source,
            license="BSD-3-Clause",
            test_fraction=test_fraction,
        )
        for text in texts
    ]
    return write_dataset_version(workspace, catalog, records, name=name, stage="annotate")
