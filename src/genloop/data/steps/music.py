"""Music checks: parse (MIDI or MusicXML), minimum length, optional key/tempo normalisation.

All three are per-record and parallel-safe, and all use music21 (`pip install
"genloop[music]"`), imported when a step is created so the rest of genloop works
without it. After the parse step every music payload is a Standard MIDI File (a
MusicXML or compressed `.mxl` file is converted; a MIDI file keeps its bytes) and
`meta` holds `format` (the original one), `notes` (chord tones counted one by one),
`duration_quarters`, `tempo` (quarter notes per minute; MIDI's default 120 when the
file sets none) and `key` (music21's Krumhansl-Schmuckler analysis, e.g. "F major").
The record id stays the hash of the original file, as for images.

Normalisation is off by default: `transpose_to_c` moves each piece to C major or A
minor (whichever matches its analysed mode, by the smaller interval) and `tempo_bpm`
replaces every tempo mark by one fixed tempo; `meta.original_key` and
`meta.transposed_semitones` keep what was changed.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from typing import Any

from genloop.config import MusicCleanConfig
from genloop.data.pipeline import Step, StepOutput, check_each
from genloop.data.record import Record
from genloop.errors import MissingDependencyError

INSTALL = 'pip install "genloop[music]"'
MUSICXML_SUFFIX = {"mxl": ".mxl", "musicxml": ".musicxml"}


def require_music21(what: str) -> None:
    """Raise MissingDependencyError with the install line when music21 is not installed."""
    if importlib.util.find_spec("music21") is None:
        raise MissingDependencyError(
            f"{what} needs the Python package music21, which is not installed", hint=f"install it: {INSTALL}"
        )


def midi_bytes(score: Any) -> bytes:
    """A music21 stream as Standard MIDI File bytes."""
    from music21 import midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Piano specified 1-indexed MIDI channel 1 ..."
        return bytes(midi.translate.streamToMidiFile(score).writestr())


def sniff_format(payload: bytes) -> str | None:
    """`midi`, `mxl` (zipped MusicXML) or `musicxml` by the file's first bytes; None for anything else."""
    if payload.startswith(b"MThd"):
        return "midi"
    if payload.startswith(b"PK\x03\x04"):
        return "mxl"
    head = payload[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<") and (b"score-partwise" in head or b"score-timewise" in head):
        return "musicxml"
    return None


def parse_music(payload: bytes, fmt: str) -> Any:
    """A music21 stream from MIDI or MusicXML bytes (music21's own exceptions on bad input)."""
    from music21 import converter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "midi":
            return converter.parseData(payload, format="midi")
        # Zipped MusicXML is only read from a file; write plain MusicXML the same way for one code path.
        handle, path = tempfile.mkstemp(suffix=MUSICXML_SUFFIX[fmt])
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(payload)
            return converter.parse(path, format="musicxml", forceSource=True)
        finally:
            os.unlink(path)


def describe(score: Any) -> dict[str, Any]:
    """`notes`, `duration_quarters`, `tempo` and `key` of a parsed stream (the meta every step keeps)."""
    notes = sum(len(element.pitches) for element in score.recurse().notes)
    boundaries = score.metronomeMarkBoundaries()
    bpm = boundaries[0][2].getQuarterBPM() if boundaries else None
    info: dict[str, Any] = {
        "notes": notes,
        "duration_quarters": round(float(score.highestTime), 4),
        "tempo": round(float(bpm), 2) if bpm else None,
        "key": None,
    }
    if notes:
        key = score.analyze("key")
        info["key"] = f"{key.tonic.name} {key.mode}"
    return info


def _failure(exc: Exception) -> str:
    message = " ".join(str(exc).split()) or exc.__class__.__name__
    return f"unparsable music: {message[:200]}"


class ParseMusic:
    """Drop files that are not parsable MIDI/MusicXML; store the rest as MIDI with their description."""

    name = "parse-music"
    parallel_safe = True
    drops_input_errors = True  # broken input, not a judgement: see genloop.data.pipeline

    def __init__(self) -> None:
        require_music21("the music parse step ([clean] of music records)")

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="music")

    def check(self, record: Record) -> Record | str:
        if not record.payload:
            return "empty file (0 bytes)"
        fmt = sniff_format(record.payload)
        if fmt is None:
            head = record.payload[:8]
            return f"unparsable music: not a MIDI or MusicXML file (starts with {head!r})"
        try:
            score = parse_music(record.payload, fmt)
            info = describe(score)
            payload = record.payload if fmt == "midi" else midi_bytes(score)
        # music21 raises many types (MidiException, MusicXMLImportException, IndexError,
        # struct.error, ...) on malformed input; any of them means "cannot be used".
        except Exception as exc:
            return _failure(exc)
        return record.with_changes(payload=payload, meta={**record.meta, "format": fmt, **info})


class ShortMusic:
    """Drop pieces with fewer than `min_notes` notes or shorter than `min_duration_quarters`."""

    name = "short-music"
    parallel_safe = True

    def __init__(self, min_notes: int, min_duration_quarters: float = 0.0) -> None:
        self.min_notes = min_notes
        self.min_duration_quarters = min_duration_quarters

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="music")

    def check(self, record: Record) -> Record | str:
        notes = int(record.meta.get("notes", 0))
        if notes < self.min_notes:
            return f"too short music ({notes} notes < {self.min_notes} min_notes)"
        quarters = float(record.meta.get("duration_quarters", 0.0))
        if quarters < self.min_duration_quarters:
            limit = f"{self.min_duration_quarters:g} min_duration_quarters"
            return f"too short music ({quarters:g} quarters < {limit})"
        return record


def semitones_to_c(tonic_pitch_class: int, mode: str) -> int:
    """The smaller transposition (-5..+6 semitones) taking the tonic to C (major) or A (minor)."""
    target = 9 if mode == "minor" else 0
    shift = (target - tonic_pitch_class) % 12
    return shift - 12 if shift > 6 else shift


class NormalizeMusic:
    """Transpose to C major / A minor and/or set one tempo; the payload is rewritten as MIDI."""

    name = "normalize-music"
    parallel_safe = True

    def __init__(self, *, transpose_to_c: bool = False, tempo_bpm: float | None = None) -> None:
        require_music21("the music normalisation step ([clean.music])")
        self.transpose_to_c = transpose_to_c
        self.tempo_bpm = tempo_bpm

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="music")

    def check(self, record: Record) -> Record | str:
        from music21 import tempo

        try:
            score = parse_music(record.payload, "midi")
            meta = dict(record.meta)
            if self.transpose_to_c and meta.get("notes"):
                key = score.analyze("key")
                shift = semitones_to_c(key.tonic.pitchClass, key.mode)
                if shift:
                    score.transpose(shift, inPlace=True)
                meta["original_key"] = f"{key.tonic.name} {key.mode}"
                meta["transposed_semitones"] = shift
            if self.tempo_bpm is not None:
                for mark in list(score.recurse().getElementsByClass(tempo.MetronomeMark)):
                    if mark.activeSite is not None:
                        mark.activeSite.remove(mark)
                parts = list(score.parts) if hasattr(score, "parts") else []
                (parts[0] if parts else score).insert(0, tempo.MetronomeMark(number=self.tempo_bpm))
            payload = midi_bytes(score)
            meta.update(describe(score))
        except Exception as exc:
            return _failure(exc)
        return record.with_changes(payload=payload, meta=meta)


def music_steps(cfg: MusicCleanConfig) -> list[Step]:
    """The clean stage's music steps for `[clean.music]`: parse, length, then normalisation if asked."""
    steps: list[Step] = [ParseMusic(), ShortMusic(cfg.min_notes, cfg.min_duration_quarters)]
    if cfg.transpose_to_c or cfg.tempo_bpm is not None:
        steps.append(NormalizeMusic(transpose_to_c=cfg.transpose_to_c, tempo_bpm=cfg.tempo_bpm))
    return steps
