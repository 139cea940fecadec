"""Music metrics from Standard MIDI File bytes: how generated pieces compare with the data.

notes = parse_midi(midi_bytes)                 # Notes: pitch, start/end in beats and seconds
pitch_class_histogram(notes), note_density(notes), polyphony(notes), key_consistency(notes)
novelty(generated_notes, training_notes)       # share of 4-note interval patterns never in training
music_metrics(generated, training)             # all of it, one flat mapping

Drum notes (channel 10) are left out: they have no pitch class. Times in beats use the file's
ticks per quarter note; seconds follow its tempo map (120 bpm until the first tempo mark).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from genloop.errors import DataError, MissingDependencyError

DRUM_CHANNEL = 9
PITCH_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class Notes:
    """The pitched notes of one piece, sorted by onset then pitch; arrays of shape (N,)."""

    pitch: np.ndarray  # MIDI note numbers
    start: np.ndarray  # beats (quarter notes) from the start of the file
    end: np.ndarray
    start_seconds: np.ndarray
    end_seconds: np.ndarray

    def __len__(self) -> int:
        return len(self.pitch)


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class, 0 = C
    mode: str  # "major" or "minor"

    def __str__(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"


def parse_midi(data: bytes) -> Notes:
    """The pitched notes of a Standard MIDI File (note-on with velocity 0 counts as note-off)."""
    try:
        import mido
    except ImportError as error:
        raise MissingDependencyError(
            "music metrics need the Python package mido", hint='install it: pip install "genloop[music]"'
        ) from error
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as error:
        raise DataError(
            f"not a readable MIDI file ({len(data)} bytes): {error}",
            hint="music metrics read Standard MIDI Files (the payload of genloop's music records)",
        ) from error
    per_beat = midi.ticks_per_beat
    tick, seconds, tempo = 0, 0.0, 500_000  # µs per beat, MIDI's default 120 bpm
    sounding: dict[tuple[int, int], list[tuple[int, float]]] = {}
    rows: list[tuple[int, int, int, float, float]] = []  # pitch, start tick, end tick, start s, end s
    for message in mido.merge_tracks(midi.tracks):
        tick += message.time
        seconds += message.time * tempo / (per_beat * 1e6)
        if message.type == "set_tempo":
            tempo = message.tempo
        elif message.type in ("note_on", "note_off") and message.channel != DRUM_CHANNEL:
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                sounding.setdefault(key, []).append((tick, seconds))
            elif sounding.get(key):
                began, began_s = sounding[key].pop(0)  # first on, first off
                rows.append((message.note, began, tick, began_s, seconds))
    for (_, pitch), starts in sounding.items():  # never switched off: end with the file
        rows.extend((pitch, began, tick, began_s, seconds) for began, began_s in starts)
    rows.sort(key=lambda row: (row[1], row[0]))
    table = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return Notes(
        pitch=table[:, 0].astype(np.int64),
        start=table[:, 1] / per_beat,
        end=table[:, 2] / per_beat,
        start_seconds=table[:, 3],
        end_seconds=table[:, 4],
    )


# ---- pitch classes and keys ----------------------------------------------------------------


def pitch_class_histogram(notes: Notes, *, weight: str = "count") -> np.ndarray:
    """(12,) share of notes (or of sounding beats, weight="duration") on each pitch class."""
    weights = np.ones(len(notes)) if weight == "count" else np.maximum(notes.end - notes.start, 0)
    histogram = np.bincount(notes.pitch % 12, weights=weights, minlength=12)
    total = histogram.sum()
    return histogram / total if total > 0 else histogram


def histogram_distance(p: np.ndarray, q: np.ndarray, *, kind: str = "tv", smoothing: float = 1e-3) -> float:
    """Total variation ½Σ|p−q| ∈ [0, 1], or KL(p‖q) after adding `smoothing` to every bin."""
    if kind == "tv":
        return float(0.5 * np.abs(p - q).sum())
    if kind == "kl":
        p_s = (p + smoothing) / (p + smoothing).sum()
        q_s = (q + smoothing) / (q + smoothing).sum()
        return float((p_s * np.log(p_s / q_s)).sum())
    raise ValueError(f"unknown histogram distance {kind!r}: use 'tv' or 'kl'")


def estimate_key(profile: np.ndarray) -> Key | None:
    """Krumhansl-Schmuckler: the key whose rotated probe-tone profile correlates best with the
    piece's duration-weighted pitch-class profile (Pearson r over the 12 classes); None if silent."""
    if profile.sum() <= 0 or np.ptp(profile) == 0:  # silent, or all twelve equal: no key
        return None
    best, best_r = None, -math.inf
    for mode, template in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(profile, np.roll(template, tonic))[0, 1])
            if r > best_r:
                best, best_r = Key(tonic, mode), r
    return best


def key_consistency(notes: Notes, *, window_beats: float = 8.0) -> float:
    """Share of `window_beats`-long windows (with notes) whose own key is the piece's global key.

    1.0 = the piece stays in one key; a random pitch soup scores low. Each window weighs the
    part of every note that sounds inside it. 0.0 for a piece without notes.
    """
    global_key = estimate_key(pitch_class_histogram(notes, weight="duration"))
    if global_key is None:
        return 0.0
    windows = math.ceil(notes.end.max() / window_beats)
    agree = counted = 0
    for w in range(windows):
        low, high = w * window_beats, (w + 1) * window_beats
        inside = np.clip(np.minimum(notes.end, high) - np.maximum(notes.start, low), 0, None)
        key = estimate_key(np.bincount(notes.pitch % 12, weights=inside, minlength=12))
        if key is not None:
            counted += 1
            agree += key == global_key
    return agree / counted if counted else 0.0


# ---- texture -------------------------------------------------------------------------------


def note_density(notes: Notes) -> tuple[float, float]:
    """(notes per beat, notes per second) from time 0 to the last note's end; (0, 0) if empty."""
    if len(notes) == 0:
        return 0.0, 0.0
    beats, seconds = float(notes.end.max()), float(notes.end_seconds.max())
    return len(notes) / beats if beats else 0.0, len(notes) / seconds if seconds else 0.0


def polyphony(notes: Notes) -> float:
    """Mean number of notes sounding at once, over the time at least one sounds (beats).

    A sweep over note starts (+1) and ends (−1): Σ count·dt / Σ_{count>0} dt.
    """
    if len(notes) == 0:
        return 0.0
    times = np.concatenate([notes.start, notes.end])
    steps = np.concatenate([np.ones(len(notes)), -np.ones(len(notes))])
    order = np.lexsort((steps, times))  # at equal times the ends (−1) come first
    times, count = times[order], np.cumsum(steps[order])
    dt = np.diff(times)
    count = count[:-1]
    sounding = dt[count > 0].sum()
    return float((count * dt).sum() / sounding) if sounding > 0 else 0.0


# ---- novelty -------------------------------------------------------------------------------


def melody(notes: Notes) -> np.ndarray:
    """The skyline: the highest pitch at each distinct onset, in time order."""
    if len(notes) == 0:
        return np.zeros(0, dtype=np.int64)
    _onsets, first = np.unique(notes.start, return_index=True)
    last = np.append(first[1:], len(notes)) - 1  # notes are sorted by (onset, pitch)
    return notes.pitch[last]


def interval_ngrams(notes: Notes, n: int = 4) -> list[tuple[int, ...]]:
    """Each run of `n` melody notes as its n−1 pitch intervals (so transposition does not count)."""
    intervals = np.diff(melody(notes)).tolist()
    return [tuple(intervals[i : i + n - 1]) for i in range(len(intervals) - n + 2)]


def novelty(generated: Iterable[Notes], training: Iterable[Notes], *, n: int = 4) -> float:
    """Share of the generated pieces' `n`-note interval patterns that occur in no training piece.

    0 = every melodic fragment is borrowed; 1 = none is. 0.0 when no generated piece has n notes.
    """
    seen = {gram for piece in training for gram in interval_ngrams(piece, n)}
    grams = [gram for piece in generated for gram in interval_ngrams(piece, n)]
    return sum(gram not in seen for gram in grams) / len(grams) if grams else 0.0


def music_metrics(
    generated: Sequence[bytes], training: Sequence[bytes], *, window_beats: float = 8.0
) -> dict[str, float]:
    """Generated pieces against the training pieces (MIDI bytes each), as one flat mapping.

    Means over generated pieces, with the same statistics of the data beside them (`data_*`)
    so a reader sees what "right" looks like.
    """
    if not generated or not training:
        raise DataError(
            f"music metrics need generated and training pieces, got {len(generated)} and {len(training)}",
            hint="generate samples and pass the training split of the dataset version",
        )
    gen = [parse_midi(data) for data in generated]
    data = [parse_midi(data) for data in training]
    if not any(len(piece) for piece in gen):
        raise DataError(
            f"none of the {len(gen)} generated MIDI files has a pitched note", hint="check the sampler"
        )
    metrics: dict[str, float] = {}
    for prefix, pieces in (("", gen), ("data_", data)):
        densities = [note_density(piece) for piece in pieces if len(piece)]
        metrics[f"{prefix}notes_per_beat"] = float(np.mean([d[0] for d in densities]))
        metrics[f"{prefix}notes_per_second"] = float(np.mean([d[1] for d in densities]))
        metrics[f"{prefix}polyphony"] = float(np.mean([polyphony(piece) for piece in pieces if len(piece)]))
        metrics[f"{prefix}key_consistency"] = float(
            np.mean([key_consistency(piece, window_beats=window_beats) for piece in pieces if len(piece)])
        )
    gen_hist = pitch_class_histogram(_pooled(gen))
    data_hist = pitch_class_histogram(_pooled(data))
    metrics["pitch_class_tv"] = histogram_distance(gen_hist, data_hist, kind="tv")
    metrics["pitch_class_kl"] = histogram_distance(gen_hist, data_hist, kind="kl")
    metrics["novelty_4"] = novelty(gen, data, n=4)
    return metrics


def _pooled(pieces: Sequence[Notes]) -> Notes:
    """All pieces' notes as one (order irrelevant: used for pitch-class counts only)."""
    return Notes(
        *(np.concatenate([getattr(p, field) for p in pieces]) for field in Notes.__dataclass_fields__)
    )
