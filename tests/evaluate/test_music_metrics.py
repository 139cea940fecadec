"""Music metrics on MIDI built here with mido (known answers) and on real Bach chorales."""

from __future__ import annotations

import io

import mido
import numpy as np
import pytest

from genloop.errors import DataError
from genloop.evaluate.music_metrics import (
    Key,
    estimate_key,
    histogram_distance,
    interval_ngrams,
    key_consistency,
    melody,
    music_metrics,
    note_density,
    novelty,
    parse_midi,
    pitch_class_histogram,
    polyphony,
)
from support.chorales import chorale_records

Note = tuple[int, float, float]  # pitch, start beat, duration in beats


def midi(notes: list[Note], *, bpm: float = 120, channel: int = 0, tpq: int = 480) -> bytes:
    """A one-track Standard MIDI File with `notes` (as a sequencer would write it)."""
    events = []
    for pitch, start, length in notes:
        events.append(
            (round(start * tpq), 1, mido.Message("note_on", note=pitch, velocity=80, channel=channel))
        )
        events.append(
            (round((start + length) * tpq), 0, mido.Message("note_off", note=pitch, channel=channel))
        )
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    file = mido.MidiFile(ticks_per_beat=tpq)
    file.tracks.append(track)
    buffer = io.BytesIO()
    file.save(file=buffer)
    return buffer.getvalue()


C_SCALE: list[Note] = [(p, i, 1) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]


def cadences(root: int, bars: int) -> list[Note]:
    """I–IV–V–I in the major key on `root`, one chord a beat, each chord as three notes."""
    chords = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)]
    return [
        (root + p, 4 * bar + beat, 1)
        for bar in range(bars)
        for beat, chord in enumerate(chords)
        for p in chord
    ]


def test_scale_density_histogram_and_key() -> None:
    notes = parse_midi(midi(C_SCALE))
    assert notes.pitch.tolist() == [60, 62, 64, 65, 67, 69, 71, 72]
    assert note_density(notes) == pytest.approx((1.0, 2.0))  # 8 notes in 8 beats = 4 s at 120 bpm
    assert note_density(parse_midi(midi(C_SCALE, bpm=60))) == pytest.approx((1.0, 1.0))
    histogram = pitch_class_histogram(notes)
    assert histogram[0] == pytest.approx(2 / 8) and histogram[2] == pytest.approx(1 / 8) and histogram[1] == 0
    assert polyphony(notes) == pytest.approx(1.0)
    assert estimate_key(pitch_class_histogram(notes, weight="duration")) == Key(0, "major")


def test_polyphony_counts_simultaneous_notes_and_skips_rests() -> None:
    chord_then_note = [(60, 0, 4), (64, 0, 4), (67, 0, 4), (72, 6, 4)]  # rest in beats 4..6
    assert polyphony(parse_midi(midi(chord_then_note))) == pytest.approx((3 * 4 + 1 * 4) / 8)


def test_drums_and_note_on_velocity_zero() -> None:
    assert len(parse_midi(midi(C_SCALE, channel=9))) == 0
    track = mido.MidiTrack(
        [
            mido.Message("note_on", note=60, velocity=90, time=0),
            mido.Message("note_on", note=60, velocity=0, time=960),
        ]
    )
    file = mido.MidiFile(ticks_per_beat=480)
    file.tracks.append(track)
    buffer = io.BytesIO()
    file.save(file=buffer)
    notes = parse_midi(buffer.getvalue())
    assert notes.end.tolist() == [2.0]


def test_key_consistency() -> None:
    assert key_consistency(parse_midi(midi(cadences(60, 4))), window_beats=4) == 1.0
    # four bars in C major, then four in F# major: only half the windows agree with either key
    modulating = cadences(60, 4) + [(p, s + 16, d) for p, s, d in cadences(66, 4)]
    assert key_consistency(parse_midi(midi(modulating)), window_beats=4) == 0.5


def test_histogram_distances() -> None:
    p = np.eye(12)[0]
    q = np.eye(12)[7]
    assert histogram_distance(p, p) == 0.0
    assert histogram_distance(p, q) == 1.0
    assert histogram_distance(p, p, kind="kl") == pytest.approx(0.0)
    assert 0 < histogram_distance(p, (p + q) / 2, kind="kl") < histogram_distance(p, q, kind="kl") < np.inf
    with pytest.raises(ValueError, match="unknown histogram distance"):
        histogram_distance(p, q, kind="l2")


def test_novelty_is_about_intervals() -> None:
    tune = parse_midi(midi([(p, i, 1) for i, p in enumerate([60, 64, 62, 67, 65, 69, 71, 72])]))
    transposed = parse_midi(midi([(p + 5, i, 1) for i, p in enumerate([60, 64, 62, 67, 65, 69, 71, 72])]))
    scale = parse_midi(midi(C_SCALE))
    assert interval_ngrams(tune)[0] == (4, -2, 5)
    assert novelty([tune], [tune]) == 0.0
    assert novelty([transposed], [tune]) == 0.0
    assert novelty([scale], [tune]) == 1.0
    # the skyline keeps the top voice of a chord
    assert melody(parse_midi(midi(cadences(60, 1)))).tolist() == [67, 72, 74, 67]


def test_bad_input_fails_clearly() -> None:
    with pytest.raises(DataError, match="not a readable MIDI file"):
        parse_midi(b"not a midi file")
    with pytest.raises(DataError, match="generated and training"):
        music_metrics([], [midi(C_SCALE)])
    with pytest.raises(DataError, match="has a pitched note"):
        music_metrics([midi(C_SCALE, channel=9)], [midi(C_SCALE)])


def test_bach_chorales() -> None:
    from music21 import converter

    chorales = [record.payload for record in chorale_records(5)]  # BWV 269 and 267 are in G major
    for payload in chorales[:2]:
        notes = parse_midi(payload)
        ours = estimate_key(pitch_class_histogram(notes, weight="duration"))
        theirs = converter.parseData(payload, format="midi").analyze("krumhansl")
        assert str(ours) == f"{theirs.tonic.name.replace('-', 'b')} {theirs.mode}"
        assert 3.0 <= polyphony(notes) <= 4.0  # SATB
        assert key_consistency(notes) > 0.4
    same = music_metrics(chorales, chorales)
    assert same["pitch_class_tv"] == 0.0 and same["novelty_4"] == 0.0
    assert same["polyphony"] == same["data_polyphony"]
    rng = np.random.default_rng(0)
    noise = midi([(int(p), i / 2, 0.5) for i, p in enumerate(rng.integers(48, 84, 200))])
    against_noise = music_metrics([noise], chorales)
    same_key = music_metrics([chorales[0]], [chorales[4]])["pitch_class_tv"]
    assert against_noise["pitch_class_tv"] > 2 * same_key
    assert against_noise["key_consistency"] < against_noise["data_key_consistency"]
    assert against_noise["novelty_4"] > 0.9
    assert against_noise["polyphony"] == pytest.approx(1.0)
