"""Music post-processors: `Artifact.data` is a Standard MIDI File (format "mid") until a converter runs.

    quantise    note-on/off times to the nearest grid line (grid in beats, or a note value "1/16")
    transpose   every pitch by `semitones`, clamped to 0..127; drums (channel 10) stay; key signatures follow
    musicxml    MIDI → MusicXML with music21 (format "musicxml", data str)   — ends the MIDI part of a chain
    render-wav  MIDI → WAV (format "wav", data bytes) with FluidSynth and a General MIDI soundfont, or the
                built-in synthesiser (synth.py)                                — ends the MIDI part too

mido and music21 come with `pip install "genloop[music]"`; each processor checks for what it needs when
it is created, so a chain fails when it is built, not halfway through a batch.
"""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from genloop.errors import GenloopError, MissingDependencyError
from genloop.generate.artifact import Artifact
from genloop.generate.postprocess import synth
from genloop.generate.postprocess.registry import Processor, register_processor

MUSIC = frozenset({"music"})
INSTALL = 'pip install "genloop[music]"'
SOUNDFONTS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/sounds/sf2/default-GM.sf2"))
FLUIDSYNTH_TIMEOUT_S = 600
FLUIDSYNTH_INSTALL = "apt-get install fluidsynth fluid-soundfont-gm"
MAJOR_KEYS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")  # fewest accidentals
MINOR_KEYS = ("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm")
PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def require(package: str, what: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise MissingDependencyError(
            f"{what} needs the Python package {package}, which is not installed",
            hint=f"install it: {INSTALL}",
        )


def midi_of(artifact: Artifact, processor: str) -> bytes:
    """The artifact's MIDI bytes, or a clear error when a converter already ran earlier in the chain."""
    data = artifact.data
    if artifact.format != "mid" or not isinstance(data, bytes) or not data.startswith(b"MThd"):
        raise GenloopError(
            f"post-processor {processor!r}: item {artifact.content_id} holds {artifact.format}, not MIDI",
            hint=f"put {processor} before render-wav and musicxml in the chain",
        )
    return data


def read_midi(data: bytes, content_id: str) -> Any:
    import mido

    try:
        return mido.MidiFile(file=io.BytesIO(data))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise GenloopError(f"item {content_id}: not a readable MIDI file ({exc})") from None


def midi_bytes(midi: Any) -> bytes:
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def is_note_off(message: Any) -> bool:
    return message.type == "note_off" or (message.type == "note_on" and message.velocity == 0)


# ---------------------------------------------------------------- quantise


def quantise_track(track: Any, step: int) -> list[Any]:
    """A track's messages with note times on multiples of `step` ticks; a note keeps ≥ one step of length."""
    timed, now = [], 0
    for message in track:
        now += message.time
        timed.append([now, message])
    starts: dict[tuple[int, int], list[int]] = {}
    for event in timed:
        time, message = event
        if message.type not in ("note_on", "note_off"):
            continue
        on_grid = (2 * time + step) // (2 * step) * step  # nearest line, halves rounded up
        key = (message.channel, message.note)
        if is_note_off(message):
            start = starts[key].pop(0) if starts.get(key) else None
            on_grid = max(on_grid, start + step) if start is not None else on_grid
        else:
            starts.setdefault(key, []).append(on_grid)
        event[0] = on_grid
    last = max((time for time, _ in timed), default=0)
    for event in timed:
        if event[1].type == "end_of_track":
            event[0] = last

    def order(item: tuple[int, list[Any]]) -> tuple[int, int, int]:
        index, (time, message) = item  # at one tick: note-offs, other events, note-ons, end of track
        rank = (
            0
            if is_note_off(message)
            else 2
            if message.type == "note_on"
            else 3
            if message.type == "end_of_track"
            else 1
        )
        return time, rank, index

    events, previous = [], 0
    for _, (time, message) in sorted(enumerate(timed), key=order):
        events.append(message.copy(time=time - previous))
        previous = time
    return events


def quantise_midi(data: bytes, grid: float, content_id: str = "?") -> bytes:
    midi = read_midi(data, content_id)
    step = max(1, round(grid * midi.ticks_per_beat))
    for track in midi.tracks:
        track[:] = quantise_track(track, step)
    return midi_bytes(midi)


@dataclass
class Quantise:
    grid: float  # beats (quarter notes)
    name: str = "quantise"
    modalities: frozenset[str] = MUSIC

    def apply(self, artifact: Artifact) -> Artifact:
        return artifact.replace(
            data=quantise_midi(midi_of(artifact, self.name), self.grid, artifact.content_id)
        )


def grid_beats(grid: float | str) -> float:
    """0.25 (beats) or "1/16" (a note value: a sixteenth = a quarter of a beat) → beats."""
    if isinstance(grid, str):
        try:
            value = Fraction(grid.strip())
        except (ValueError, ZeroDivisionError):
            raise ValueError(f'grid {grid!r} is not a note value like "1/16" or a number of beats') from None
        return float(value * 4)
    if isinstance(grid, bool) or not isinstance(grid, int | float):
        raise ValueError(f'grid must be a number of beats or a note value like "1/16" (got {grid!r})')
    return float(grid)


@register_processor("quantise")
def quantise(*, grid: float | str = 0.25) -> Processor:
    """Note times to the nearest `grid` line: 0.25 beats = "1/16" notes (the default)."""
    beats = grid_beats(grid)
    if not 1 / 32 <= beats <= 4:
        raise ValueError(
            f"grid must be from 1/32 beat (a 1/128 note) to 4 beats (a whole note); got {grid!r}"
        )
    require("mido", "the quantise post-processor")
    return Quantise(beats)


# ---------------------------------------------------------------- transpose


def transposed_key(key: str, semitones: int) -> str:
    """A key signature name moved by `semitones`, spelled with the fewest accidentals ("F" + 2 → "G")."""
    minor = key.endswith("m")
    tonic = key[:-1] if minor else key
    pitch = PITCH_CLASS[tonic[0]] + tonic.count("#") - tonic.count("b")
    return (MINOR_KEYS if minor else MAJOR_KEYS)[(pitch + semitones) % 12]


def transpose_midi(data: bytes, semitones: int, *, drums: bool, content_id: str = "?") -> bytes:
    midi = read_midi(data, content_id)
    for track in midi.tracks:
        for index, message in enumerate(track):
            if message.type in ("note_on", "note_off", "polytouch") and (
                drums or message.channel != synth.DRUM_CHANNEL
            ):
                track[index] = message.copy(note=min(127, max(0, message.note + semitones)))
            elif message.type == "key_signature":
                track[index] = message.copy(key=transposed_key(message.key, semitones))
    return midi_bytes(midi)


@dataclass
class Transpose:
    semitones: int
    drums: bool
    name: str = "transpose"
    modalities: frozenset[str] = MUSIC

    def apply(self, artifact: Artifact) -> Artifact:
        midi = midi_of(artifact, self.name)
        return artifact.replace(
            data=transpose_midi(midi, self.semitones, drums=self.drums, content_id=artifact.content_id)
        )


@register_processor("transpose")
def transpose(*, semitones: int, drums: bool = False) -> Processor:
    """Every pitch up (+) or down (−) by `semitones` (−48..48), clamped to MIDI's 0..127."""
    if isinstance(semitones, bool) or not isinstance(semitones, int) or not -48 <= semitones <= 48:
        raise ValueError(f"semitones must be a whole number from -48 to 48 (got {semitones!r})")
    require("mido", "the transpose post-processor")
    return Transpose(semitones, bool(drums))


# ---------------------------------------------------------------- MusicXML


def stable_musicxml(xml: str) -> str:
    """music21's output made the same for the same score: no encoding date, part ids P1, P2 … not hashes."""
    xml = re.sub(r"\s*<encoding-date>[^<]*</encoding-date>", "", xml)
    xml = re.sub(r'\s*<creator type="composer">Music21</creator>', "", xml)  # music21's placeholder
    renamed: dict[str, str] = {}
    for old in re.findall(r'id="([^"]+)"', xml):
        renamed.setdefault(old, f"{old[0] if old[0].isalpha() else 'X'}{len(renamed) + 1}")
    return re.sub(r'id="([^"]+)"', lambda match: f'id="{renamed[match.group(1)]}"', xml)


def midi_to_musicxml(data: bytes, title: str) -> str:
    import warnings

    from music21 import converter, metadata
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = converter.parseData(data, format="midi")
        score.metadata = metadata.Metadata()
        score.metadata.title = title
        xml = GeneralObjectExporter(score).parse().decode("utf-8")
    return stable_musicxml(xml)


@dataclass
class MusicXML:
    name: str = "musicxml"
    modalities: frozenset[str] = MUSIC

    def apply(self, artifact: Artifact) -> Artifact:
        xml = midi_to_musicxml(midi_of(artifact, self.name), title=artifact.content_id)
        # The MIDI stays in meta: the `novelty` safety check compares melodies, not notation.
        meta = {**artifact.meta, "midi": artifact.data}
        return artifact.replace(data=xml, format="musicxml", options={}, meta=meta)


@register_processor("musicxml")
def musicxml() -> Processor:
    """MIDI → MusicXML 4.0 (music21's quantisation and spelling), titled with the content id."""
    require("music21", "the musicxml post-processor")
    return MusicXML()


# ---------------------------------------------------------------- WAV


def fluidsynth_wav(data: bytes, soundfont: Path, sample_rate: int, gain: float) -> bytes:
    """MIDI → 16-bit stereo WAV with the FluidSynth command line (rendered faster than real time)."""
    with tempfile.TemporaryDirectory(prefix="genloop-fluidsynth-") as folder:
        source, target = Path(folder) / "in.mid", Path(folder) / "out.wav"
        source.write_bytes(data)
        command = [
            "fluidsynth",
            "-ni",
            "-q",
            "-g",
            str(gain),
            "-r",
            str(sample_rate),
            "-T",
            "wav",
            "-O",
            "s16",
        ]
        try:
            result = subprocess.run(
                [*command, "-F", str(target), str(soundfont), str(source)],
                capture_output=True,
                text=True,
                timeout=FLUIDSYNTH_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise GenloopError(
                f"fluidsynth took over {FLUIDSYNTH_TIMEOUT_S} s to render one MIDI file",
                hint='check the file\'s length, or set engine = "builtin"',
            ) from None
        if result.returncode != 0 or not target.is_file():
            said = (result.stderr or result.stdout)[-400:].strip()
            raise GenloopError(
                f"fluidsynth failed (exit {result.returncode}): {said}",
                hint='set engine = "builtin" to use the built-in synthesiser',
            )
        return target.read_bytes()


def find_soundfont(soundfont: str | None) -> Path | None:
    if soundfont is not None:
        path = Path(soundfont)
        if not path.is_file():
            raise ValueError(f"soundfont {path} does not exist (give a .sf2 file, or leave it out)")
        return path
    return next((path for path in SOUNDFONTS if path.is_file()), None)


@dataclass
class RenderWav:
    engine: str  # fluidsynth | builtin (resolved when built)
    sample_rate: int
    soundfont: Path | None
    gain: float
    name: str = "render-wav"
    modalities: frozenset[str] = MUSIC

    def apply(self, artifact: Artifact) -> Artifact:
        midi = midi_of(artifact, self.name)
        read_midi(midi, artifact.content_id)  # a clear error for a broken file, whichever engine
        if self.engine == "fluidsynth" and self.soundfont is not None:
            wav = fluidsynth_wav(midi, self.soundfont, self.sample_rate, self.gain)
        else:
            wav = synth.synthesise(midi, self.sample_rate)
        meta = {**artifact.meta, "audio_engine": self.engine, "midi": artifact.data}  # for `novelty`
        return artifact.replace(data=wav, format="wav", options={}, meta=meta)


@register_processor("render-wav")
def render_wav(
    *, engine: str = "auto", sample_rate: int = 22050, soundfont: str | None = None, gain: float = 0.6
) -> Processor:
    """MIDI → WAV. `engine`: auto (FluidSynth when it and a GM soundfont are installed, else builtin),
    fluidsynth (stereo, `gain` 0-10, `soundfont` default Debian's FluidR3_GM), builtin (synth.py, mono)."""
    if engine not in ("auto", "fluidsynth", "builtin"):
        raise ValueError(f"engine must be auto, fluidsynth or builtin (got {engine!r})")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 96000:
        raise ValueError(f"sample_rate must be a whole number of Hz from 8000 to 96000 (got {sample_rate!r})")
    if not isinstance(gain, int | float) or not 0 < gain <= 10:
        raise ValueError(f"gain must be above 0 and at most 10 (got {gain!r})")
    require("mido", "the render-wav post-processor")
    font = find_soundfont(soundfont)
    available = shutil.which("fluidsynth") is not None and font is not None
    if engine == "fluidsynth" and not available:
        missing = (
            "the fluidsynth program" if shutil.which("fluidsynth") is None else "a General MIDI soundfont"
        )
        raise MissingDependencyError(
            f'render-wav with engine = "fluidsynth" needs {missing}, which is not installed',
            hint=f'{FLUIDSYNTH_INSTALL}, or set engine = "builtin"',
        )
    chosen = "fluidsynth" if engine == "fluidsynth" or (engine == "auto" and available) else "builtin"
    return RenderWav(chosen, sample_rate, font if chosen == "fluidsynth" else None, float(gain))
