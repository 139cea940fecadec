"""The built-in synthesiser: a Standard MIDI File → mono 16-bit RIFF WAVE bytes, numpy only.

Used by `render-wav` when FluidSynth or its General MIDI soundfont is not installed. It is a sketch
of the music, not a performance: every pitched note is one additive tone (five harmonics of falling
strength) under an ADSR envelope, its loudness the note's velocity; percussion (MIDI channel 10) is
a short decaying noise burst, seeded by the drum's key so that the output is the same bytes for the
same file on the same machine. Programs, pedals and pitch bends are ignored.

    sample(t) = Σ_notes  velocity/127 · env(t − start) · Σ_h  a_h · sin(2π · h · f0 · (t − start))
    f0 = 440 Hz · 2^((pitch − 69) / 12)
    env: 0 → 1 in ATTACK, → SUSTAIN in DECAY, held until note-off, → 0 in RELEASE
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass

import numpy as np

HARMONICS = (1.0, 0.5, 0.3, 0.15, 0.08)  # amplitude of the 1st … 5th partial: a soft, organ-like tone
ATTACK, DECAY, SUSTAIN, RELEASE = 0.01, 0.12, 0.6, 0.2  # seconds, seconds, level, seconds
DRUM_CHANNEL = 9  # "channel 10" in General MIDI's 1-based numbering
DRUM_DECAY = 0.06  # seconds for a drum hit to fall to 1/e
VOICE_GAIN = 0.25  # one full-velocity note uses a quarter of full scale; loud chords are then normalised


@dataclass(frozen=True)
class Note:
    start: float  # seconds
    end: float  # seconds (note-off)
    pitch: int
    velocity: int
    channel: int


def midi_notes(data: bytes) -> list[Note]:
    """Every note of a MIDI file in seconds (tempo changes applied), in order of start."""
    import mido

    notes: list[Note] = []
    sounding: dict[tuple[int, int], list[tuple[float, int]]] = {}
    now = 0.0
    for message in mido.MidiFile(file=io.BytesIO(data)):  # merged tracks, delta times in seconds
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding.setdefault((message.channel, message.note), []).append((now, message.velocity))
        elif message.type in ("note_on", "note_off") and sounding.get((message.channel, message.note)):
            start, velocity = sounding[(message.channel, message.note)].pop(0)
            notes.append(Note(start, now, message.note, velocity, message.channel))
    for (channel, pitch), starts in sounding.items():  # notes never released end with the file
        notes.extend(Note(start, now, pitch, velocity, channel) for start, velocity in starts)
    return sorted(notes, key=lambda note: (note.start, note.pitch, note.channel))


def envelope(t: np.ndarray, held: float) -> np.ndarray:
    """ADSR level at times `t` (s) of a note held for `held` s."""
    times, levels = [0.0, ATTACK, ATTACK + DECAY], [0.0, 1.0, SUSTAIN]
    attack_decay = np.interp(t, times, levels)
    released = float(np.interp(held, times, levels)) * np.clip(1.0 - (t - held) / RELEASE, 0.0, 1.0)
    return np.where(t <= held, attack_decay, released)


def voice(note: Note, sample_rate: int) -> np.ndarray:
    """One note's samples from its start to the end of its release."""
    held = max(note.end - note.start, 1.0 / sample_rate)
    t = np.arange(math.ceil((held + RELEASE) * sample_rate)) / sample_rate
    if note.channel == DRUM_CHANNEL:
        noise = np.random.default_rng(note.pitch).standard_normal(t.size)
        return noise * np.exp(-t / DRUM_DECAY) * (note.velocity / 127) * VOICE_GAIN
    f0 = 440.0 * 2.0 ** ((note.pitch - 69) / 12)
    tone = sum(
        (
            amplitude * np.sin(2 * np.pi * h * f0 * t)
            for h, amplitude in enumerate(HARMONICS, 1)
            if h * f0 < sample_rate / 2
        ),
        start=np.zeros_like(t),
    )
    return tone * envelope(t, held) * (note.velocity / 127) * VOICE_GAIN


def render(notes: list[Note], sample_rate: int) -> np.ndarray:
    """All notes mixed into float samples in [-1, 1] (scaled down only when the mix would clip)."""
    end = max((note.end for note in notes), default=0.0) + RELEASE
    mix = np.zeros(math.ceil(end * sample_rate) + 1)
    for note in notes:
        samples = voice(note, sample_rate)
        first = round(note.start * sample_rate)
        mix[first : first + samples.size] += samples[: mix.size - first]
    peak = float(np.abs(mix).max(initial=0.0))
    return mix / peak * 0.99 if peak > 0.99 else mix


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono 16-bit PCM RIFF WAVE."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def synthesise(data: bytes, sample_rate: int = 22050) -> bytes:
    """A Standard MIDI File → WAV bytes (mono, 16-bit, `sample_rate` Hz); the same input, the same bytes."""
    return wav_bytes(render(midi_notes(data), sample_rate), sample_rate)
