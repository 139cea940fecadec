"""`bach-chorales`: J. S. Bach's four-part chorales from music21's bundled corpus, as MIDI.

| source          | content                                            | label           | license      |
|-----------------|----------------------------------------------------|-----------------|--------------|
| `bach-chorales` | 371 chorales (Riemenschneider order), MIDI bytes    | major / minor   | BSD-3-Clause |

The corpus ships inside the `music21` wheel (`pip install "genloop[music]"`), so it
loads with the network blocked. music21 itself is BSD-3-Clause; the chorales are
Bach's (1685-1750), in the public domain, and their encodings are distributed with
music21 "with the permission of the encoders" (`music21/corpus/license.txt`, quoted
in every record's `meta.license_note`). Parsing is slow (a few tenths of a second per
chorale), so the source is lazy and stops at `[collect].limit`.

Each record's payload is a Standard MIDI File written by music21; `label` is the mode
of the analysed key, and `meta` holds the BWV number, Riemenschneider number, key,
corpus path and provenance.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources.builtin_text import limited
from genloop.data.sources.registry import register_source
from genloop.data.steps.music import midi_bytes, require_music21
from genloop.workspace import Workspace

LICENSE = "BSD-3-Clause"
LICENSE_NOTE = (
    "music21 (BSD-3-Clause) corpus: encodings distributed with the permission of the encoders "
    "(music21/corpus/license.txt); the compositions (J. S. Bach, 1685-1750) are in the public domain"
)


def _bwv(name: str) -> str:
    """`bach/bwv66.6` -> `66.6`."""
    match = re.search(r"bwv([\w.-]+)$", name)
    return match.group(1) if match else name


def _chorale(name: str, number: int, cfg: CollectConfig, provenance: str) -> Record:
    from music21 import corpus

    score = corpus.parse(name)
    key = score.analyze("key")
    title = score.metadata.title if score.metadata is not None else None
    paths = corpus.getWork(name)
    path = paths[0] if isinstance(paths, list) and paths else paths
    meta: dict[str, Any] = {
        "bwv": _bwv(name),
        "riemenschneider": number,
        "title": title or f"BWV {_bwv(name)}",
        "key": f"{key.tonic.name} {key.mode}",
        "corpus_path": name,
        "path": Path(str(path)).as_posix() if path else name,
        "format": "musicxml",
        "provenance": provenance,
        "license_note": LICENSE_NOTE,
    }
    return Record.create(
        midi_bytes(score),
        modality="music",
        label=key.mode,
        source="bach-chorales",
        license=LICENSE,
        test_fraction=cfg.test_fraction,
        meta=meta,
    )


@register_source("bach-chorales")
def bach_chorales(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    require_music21("the 'bach-chorales' source")
    from music21 import corpus

    provenance = (
        f"music21 {metadata.version('music21')} corpus (corpus.chorales.Iterator, Riemenschneider order)"
    )
    names = corpus.chorales.Iterator(returnType="filename")

    def records() -> Iterator[Record]:
        for number, name in enumerate(names, start=1):
            try:
                yield _chorale(str(name), number, cfg, provenance)
            except Exception as exc:  # one broken encoding must not end the collection
                problems.append(f"music21 corpus {name}: cannot convert to MIDI ({exc}); skipped")

    yield from limited(records(), cfg)
