"""Music post-processors on real MIDI bytes: grid, pitches, MusicXML read back, WAV rendered two ways."""

import io
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from genloop.errors import GenloopError
from genloop.generate.artifact import Artifact
from genloop.generate.postprocess.registry import build_chain, build_processor, run_chain

mido = pytest.importorskip("mido")  # the music extra

TICKS = 480  # per beat


def midi(notes: list[tuple[int, int, int]], *, channel: int = 0, key: str | None = None) -> bytes:
    """A one-track MIDI file from (pitch, start tick, end tick), 120 bpm."""
    events = []
    for pitch, start, end in notes:
        events += [
            (start, 1, mido.Message("note_on", note=pitch, velocity=90, channel=channel)),
            (end, 0, mido.Message("note_off", note=pitch, velocity=0, channel=channel)),
        ]
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000)])
    if key is not None:
        track.append(mido.MetaMessage("key_signature", key=key))
    now = 0
    for time, _, message in sorted(events, key=lambda event: event[:2]):
        track.append(message.copy(time=time - now))
        now = time
    file = mido.MidiFile(ticks_per_beat=TICKS)
    file.tracks.append(track)
    buffer = io.BytesIO()
    file.save(file=buffer)
    return buffer.getvalue()


def item(data: bytes) -> Artifact:
    return Artifact(content_id="m1", modality="music", data=data, format="mid")


def raw(artifact: Artifact) -> bytes:
    assert isinstance(artifact.data, bytes)
    return artifact.data


def notes_of(data: bytes) -> list[tuple[int, int, int]]:
    """(pitch, start tick, end tick) of every note, by start."""
    found, sounding, now = [], {}, 0
    for message in mido.MidiFile(file=io.BytesIO(data)).tracks[0]:
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding[message.note] = now
        elif message.type in ("note_on", "note_off"):
            found.append((message.note, sounding.pop(message.note), now))
    return sorted(found, key=lambda note: (note[1], note[0]))


SCALE = [(60 + step, i * TICKS, (i + 1) * TICKS) for i, step in enumerate([0, 2, 4, 5, 7, 9, 11, 12])]


@pytest.mark.parametrize("grid", [0.25, "1/16"])
def test_quantise_moves_note_times_to_the_grid(grid: float | str) -> None:
    loose = midi([(60, 5, 230), (62, 250, 470), (64, 600, 610), (65, 1030, 1490)])
    out = build_processor({"name": "quantise", "grid": grid}, "music").apply(item(loose))
    assert out.format == "mid"
    # step = 0.25 beat = 120 ticks; the 10-tick note keeps one step of length
    assert notes_of(raw(out)) == [(60, 0, 240), (62, 240, 480), (64, 600, 720), (65, 1080, 1440)]


def test_transpose_shifts_pitches_clamps_and_leaves_drums() -> None:
    out = build_processor({"name": "transpose", "semitones": 5}, "music").apply(
        item(midi([(60, 0, 480), (125, 480, 960)], key="F"))
    )
    assert [pitch for pitch, _, _ in notes_of(raw(out))] == [65, 127]
    keys = [m.key for m in mido.MidiFile(file=io.BytesIO(raw(out))).tracks[0] if m.type == "key_signature"]
    assert keys == ["Bb"]
    drums = midi([(36, 0, 240), (38, 240, 480)], channel=9)
    down = build_processor({"name": "transpose", "semitones": -3}, "music").apply(item(drums))
    assert notes_of(raw(down)) == notes_of(drums)


def test_musicxml_parses_back_with_the_same_notes() -> None:
    from music21 import converter
    from music21.note import Note

    out = build_processor("musicxml", "music").apply(item(midi(SCALE)))
    assert out.format == "musicxml" and isinstance(out.data, str) and out.extension == ".musicxml"
    score = converter.parseData(out.data, format="musicxml")
    assert [note.pitch.midi for note in score.recurse().getElementsByClass(Note)] == [
        pitch for pitch, _, _ in SCALE
    ]
    assert "<movement-title>m1</movement-title>" in out.data
    assert (
        build_processor("musicxml", "music").apply(item(midi(SCALE))).data == out.data
    )  # no dates, no hash ids


def wav_facts(data: bytes) -> tuple[int, int, int, float, np.ndarray]:
    with wave.open(io.BytesIO(data)) as audio:
        frames = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
        return (
            audio.getnchannels(),
            audio.getsampwidth(),
            audio.getframerate(),
            audio.getnframes() / audio.getframerate(),
            frames,
        )


def test_render_wav_builtin_is_mono_audible_deterministic_and_in_tune() -> None:
    a4 = midi([(69, 0, 2 * TICKS)])  # one second of A4 at 120 bpm
    render = build_processor({"name": "render-wav", "engine": "builtin"}, "music")
    out = render.apply(item(a4))
    assert out.format == "wav" and raw(out)[:4] == b"RIFF" and raw(out)[8:12] == b"WAVE"
    assert out.meta["audio_engine"] == "builtin"
    channels, width, rate, seconds, frames = wav_facts(raw(out))
    assert (channels, width, rate) == (1, 2, 22050)
    assert 1.15 <= seconds <= 1.25  # the note plus its 0.2 s release
    held = frames[:rate].astype(float)
    assert np.sqrt(np.mean(held**2)) > 1000  # clearly audible, not silence
    spectrum = np.abs(np.fft.rfft(held))
    assert abs(np.argmax(spectrum) * rate / held.size - 440) < 2
    assert render.apply(item(a4)).data == out.data


@pytest.mark.skipif(
    not Path("/usr/bin/fluidsynth").exists(), reason="needs apt-get install fluidsynth fluid-soundfont-gm"
)
def test_render_wav_with_fluidsynth() -> None:
    render = build_processor({"name": "render-wav", "engine": "fluidsynth"}, "music")
    out = render.apply(item(midi(SCALE)))
    assert out.meta["audio_engine"] == "fluidsynth" and raw(out)[:4] == b"RIFF"
    channels, width, rate, seconds, frames = wav_facts(raw(out))
    assert (channels, width, rate) == (2, 2, 22050)
    assert seconds >= 4.0  # eight beats at 120 bpm
    assert np.abs(frames[: rate * 4 * channels].astype(float)).max() > 1000
    assert render.apply(item(midi(SCALE))).data == out.data  # FluidSynth renders the same bytes again
    assert (
        build_processor("render-wav", "music").apply(item(midi(SCALE))).meta["audio_engine"] == "fluidsynth"
    )


def test_render_wav_auto_falls_back_to_builtin_without_fluidsynth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert build_processor("render-wav", "music").apply(item(midi(SCALE))).meta["audio_engine"] == "builtin"
    with pytest.raises(GenloopError, match="fluidsynth program") as caught:
        build_processor({"name": "render-wav", "engine": "fluidsynth"}, "music")
    assert "apt-get install fluidsynth" in str(caught.value)


def test_a_chain_from_config_specs_runs_in_order() -> None:
    chain = build_chain(
        [
            {"name": "quantise", "grid": "1/8"},
            {"name": "transpose", "semitones": -12},
            {"name": "render-wav", "engine": "builtin"},
        ],
        "music",
    )
    out = run_chain(chain, item(midi([(72, 10, 470), (74, 490, 950)])))
    assert out.format == "wav"
    assert notes_of(raw(run_chain(chain[:2], item(midi([(72, 10, 470)]))))) == [(60, 0, 480)]


def test_midi_processors_after_a_converter_say_where_to_move_them() -> None:
    chain = build_chain(
        [{"name": "render-wav", "engine": "builtin"}, {"name": "transpose", "semitones": 2}], "music"
    )
    with pytest.raises(GenloopError, match="holds wav, not MIDI") as caught:
        run_chain(chain, item(midi(SCALE)))
    assert "before render-wav and musicxml" in str(caught.value)


def test_a_broken_midi_file_is_named() -> None:
    with pytest.raises(GenloopError, match="m1: not a readable MIDI file"):
        build_processor({"name": "transpose", "semitones": 1}, "music").apply(
            item(b"MThd\x00\x00\x00\x06garbage")
        )


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"name": "quantise", "grid": "abc"}, "note value"),
        ({"name": "quantise", "grid": 8}, "whole note"),
        ({"name": "transpose", "semitones": 100}, "-48 to 48"),
        ({"name": "transpose", "semitones": 1.5}, "whole number"),
        ({"name": "render-wav", "engine": "timidity"}, "auto, fluidsynth or builtin"),
        ({"name": "render-wav", "sample_rate": 100}, "8000 to 96000"),
        ({"name": "render-wav", "soundfont": "/nonexistent.sf2"}, "does not exist"),
        ({"name": "musicxml", "version": 4}, "bad parameters"),
    ],
)
def test_bad_parameters_are_refused_clearly(spec: dict[str, object], words: str) -> None:
    with pytest.raises(GenloopError, match=words) as caught:
        build_processor(spec, "music")
    assert repr(spec["name"]) in str(caught.value)


def test_music_processors_refuse_other_modalities() -> None:
    with pytest.raises(GenloopError, match="does not take image"):
        build_processor({"name": "transpose", "semitones": 2}, "image")
    with pytest.raises(GenloopError, match="does not take text"):
        build_chain(["musicxml"], "text")
