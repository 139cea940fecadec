"""Music in the data stage: bach-chorales, MIDI/MusicXML folders, parse/length/normalisation steps."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from genloop.catalog import open_catalog
from genloop.config import CleanConfig, CollectConfig
from genloop.data.clean import clean, clean_steps
from genloop.data.collect import collect
from genloop.data.record import Record
from genloop.data.sources.registry import get_source, known_sources
from genloop.data.steps import music
from genloop.data.steps.music import (
    NormalizeMusic,
    ParseMusic,
    ShortMusic,
    midi_bytes,
    parse_music,
    semitones_to_c,
)
from genloop.errors import MissingDependencyError
from genloop.workspace import Workspace

pytest.importorskip("music21", reason='music21 is not installed (pip install "genloop[music]")')


@pytest.fixture(scope="module")
def chorales() -> list[Record]:
    """The first four chorales (G major, A major, A minor, E major), parsed once for the module."""
    problems: list[str] = []
    cfg = CollectConfig(source="bach-chorales", limit=4, modality="music")
    records = list(get_source("bach-chorales")(None, cfg, problems))  # type: ignore[arg-type]
    assert problems == []
    return records


def analysed_key(payload: bytes) -> str:
    key = parse_music(payload, "midi").analyze("key")
    return f"{key.tonic.name} {key.mode}"


def two_note_midi() -> bytes:
    from music21 import note, stream

    return midi_bytes(stream.Stream([note.Note("C4"), note.Note("E4")]))


def test_bach_chorales_are_midi_with_license_and_provenance(chorales: list[Record]) -> None:
    assert "bach-chorales" in known_sources()
    assert len(chorales) == 4
    assert all(r.payload.startswith(b"MThd") and r.modality == "music" for r in chorales)
    assert [r.label for r in chorales] == ["major", "major", "minor", "major"]
    assert {(r.source, r.license) for r in chorales} == {("bach-chorales", "BSD-3-Clause")}
    first = chorales[0].meta
    assert (first["bwv"], first["riemenschneider"], first["key"]) == ("269", 1, "G major")
    assert first["provenance"].startswith("music21 ") and "license.txt" in first["license_note"]
    assert "public domain" in first["license_note"] and first["path"].endswith("bwv269.mxl")


def test_folder_music_drops_corrupt_and_short_files_by_name(
    sqlite_workspace: Workspace, chorales: list[Record]
) -> None:
    data = sqlite_workspace.root / "data" / "music"
    (data / "bach").mkdir(parents=True)
    (data / "bach" / "bwv269.mid").write_bytes(chorales[0].payload)
    (data / "bach" / "bwv347.midi").write_bytes(chorales[1].payload)
    (data / "bad").mkdir()
    (data / "bad" / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06 this is not a MIDI file")
    (data / "bad" / "two_notes.mid").write_bytes(two_note_midi())
    (data / "notes.txt").write_text("not music", encoding="utf-8")
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = CollectConfig(source="folder", path="data/music", modality="music", license="CC0-1.0")
    collected = collect(sqlite_workspace, catalog, cfg, name="music")
    assert collected.dataset.manifest["records"] == 4

    cleaned = clean(sqlite_workspace, catalog, collected.dataset, CleanConfig(workers=1))
    dropped: dict[str, Any] = cleaned.report["dropped"]
    assert cleaned.report["kept"] == 2
    assert dropped["unparsable music"]["count"] == 1
    assert "data/music/bad/corrupt.mid: unparsable music:" in dropped["unparsable music"]["examples"][0]
    assert dropped["too short music"]["examples"] == [
        "data/music/bad/two_notes.mid: too short music (2 notes < 8 min_notes)"
    ]
    kept = sorted(cleaned.dataset.iter_records(), key=lambda r: r.meta["path"])
    assert [r.label for r in kept] == ["bach", "bach"]
    assert [r.meta["key"] for r in kept] == ["G major", "A major"]
    assert all(r.meta["notes"] > 100 and r.meta["duration_quarters"] > 20 and r.meta["tempo"] for r in kept)


def test_parse_converts_musicxml_and_rejects_non_music() -> None:
    from music21 import corpus

    xml = (Path(str(corpus.getWork("bach/bwv66.6"))).read_bytes(), "mxl")  # a zipped MusicXML file
    records = [
        Record.create(payload, modality="music", label=None, source="t", license="x", meta={"path": p})
        for payload, p in [xml, (b"hello", "hello.mid"), (b"", "empty.mid")]
    ]
    output = ParseMusic()(records)
    assert len(output.kept) == 1 and output.kept[0].payload.startswith(b"MThd")
    assert output.kept[0].meta["format"] == "mxl" and output.kept[0].meta["key"] == "F# minor"
    assert [str(reason) for _, reason in output.dropped] == [
        "unparsable music: not a MIDI or MusicXML file (starts with b'hello')",
        "empty file (0 bytes)",
    ]


def test_transpose_to_c_and_fixed_tempo(chorales: list[Record]) -> None:
    minor = chorales[2]  # A minor already: move it to C minor first, so normalisation has work to do
    c_minor = midi_bytes(parse_music(minor.payload, "midi").transpose(3))
    pieces = [chorales[0], minor.with_changes(payload=c_minor, meta={})]
    parsed = ParseMusic()(pieces).kept
    output = NormalizeMusic(transpose_to_c=True, tempo_bpm=90)(parsed)
    assert [analysed_key(r.payload) for r in output.kept] == ["C major", "A minor"]
    assert [r.meta["key"] for r in output.kept] == ["C major", "A minor"]
    assert [r.meta["original_key"] for r in output.kept] == ["G major", "C minor"]
    assert [r.meta["transposed_semitones"] for r in output.kept] == [5, -3]
    assert all(r.meta["tempo"] == 90 for r in output.kept)
    assert parse_music(output.kept[0].payload, "midi").metronomeMarkBoundaries()[0][2].number == 90


def test_clean_steps_for_music_and_semitones() -> None:
    names = [step.name for step in clean_steps({"music"}, CleanConfig())]
    assert names == ["parse-music", "short-music", "exact-dedup"]  # normalisation is off by default
    with_norm = CleanConfig.model_validate({"music": {"transpose_to_c": True}})
    assert "normalize-music" in [step.name for step in clean_steps({"music"}, with_norm)]
    assert [semitones_to_c(pc, "major") for pc in (0, 7, 6, 5)] == [0, 5, 6, -5]
    assert semitones_to_c(9, "minor") == 0 and semitones_to_c(0, "minor") == -3
    piece = Record.create(b"MThd", modality="music", label=None, source="t", license="x")
    piece = piece.with_changes(meta={"notes": 20, "duration_quarters": 4.0})
    assert (
        ShortMusic(8, 16.0)([piece]).dropped[0][1]
        == "too short music (4 quarters < 16 min_duration_quarters)"
    )
    assert ShortMusic(8)([piece]).kept == [piece]


def test_missing_music21_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        music.importlib.util, "find_spec", lambda name: None if name == "music21" else real(name)
    )
    with pytest.raises(MissingDependencyError) as raised:
        ParseMusic()
    assert 'pip install "genloop[music]"' in (raised.value.hint or "")
