"""MIDI ↔ REMI event tokens (Huang & Yang 2020, https://arxiv.org/abs/2002.00212), via miditok.

    MIDI bytes ─symusic─▶ Score ─merge tracks─▶ one track ─REMI─▶ [BOS, Bar, TimeSig_4/4, Position_0,
                                                                  Pitch_60, Duration_1.0.8, …, EOS]

Every non-drum track is merged into one (program 0) before encoding: a chorale's four
voices become one polyphonic stream, so the model learns harmony, and one token
sequence per piece keeps the training loop simple. Drum tracks are dropped (a tonal
model). Velocities are off by default (`num_velocities = 0`): the chorales have one
velocity, and a velocity token per note would cost a third of the context.

The token ids depend on the tokenizer's parameters and on miditok's vocabulary layout;
`fingerprint` hashes both, so a checkpoint or model trained with other tokens is
refused instead of being decoded into noise.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any

import torch

from genloop.errors import DataError, GenloopError, MissingDependencyError
from genloop.storage import stable_hash

INSTALL = 'pip install "genloop[music]"'


def require_miditok(what: str) -> None:
    """Raise MissingDependencyError with the install line when miditok/symusic are missing."""
    for package in ("miditok", "symusic"):
        if importlib.util.find_spec(package) is None:
            raise MissingDependencyError(
                f"{what} needs the Python package {package}, which is not installed",
                hint=f"install it: {INSTALL}",
            )


@dataclass(frozen=True)
class MusicTokenizerConfig:
    """REMI parameters; saved in the model's config.json under "tokenizer"."""

    pitch_low: int = 21
    """Lowest MIDI pitch with a token (21 = A0, the piano's lowest key)."""
    pitch_high: int = 108
    """Highest MIDI pitch with a token, inclusive (108 = C8)."""
    positions_per_beat: int = 8
    """Onset/duration grid: 8 = demisemiquavers within the first 4 beats (half that up to 12 beats)."""
    num_velocities: int = 0
    """Velocity bins (a Velocity token per note); 0 = none, every note decodes at velocity 100."""
    time_signatures: bool = True
    tempos: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.pitch_low < self.pitch_high <= 127:
            problems.append(
                f"need 0 ≤ pitch_low < pitch_high ≤ 127 (got {self.pitch_low}, {self.pitch_high})"
            )
        if self.positions_per_beat not in (1, 2, 4, 8, 12, 16, 24, 32):
            problems.append(
                f"positions_per_beat must be 1, 2, 4, 8, 12, 16, 24 or 32 (got {self.positions_per_beat})"
            )
        if not 0 <= self.num_velocities <= 127:
            problems.append(f"num_velocities must be in 0..127 (got {self.num_velocities})")
        if problems:
            raise GenloopError(
                "invalid music tokenizer config: " + "; ".join(problems),
                hint="fix [train.model.tokenizer] in genloop.toml",
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> MusicTokenizerConfig:
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise GenloopError(
                f"unknown music tokenizer option(s) {unknown}",
                hint=f"[train.model.tokenizer] accepts: {', '.join(sorted(known))}",
            )
        return cls(**values)


class MusicTokenizer:
    """A REMI tokenizer over one merged track; ids include PAD=0, BOS, EOS specials."""

    def __init__(self, config: MusicTokenizerConfig | None = None) -> None:
        require_miditok("the music tokenizer")
        import miditok

        self.config = config or MusicTokenizerConfig()
        ppb = self.config.positions_per_beat
        self._remi = miditok.REMI(
            miditok.TokenizerConfig(
                pitch_range=(self.config.pitch_low, self.config.pitch_high + 1),  # miditok: end-exclusive
                beat_res={(0, 4): ppb, (4, 12): max(1, ppb // 2)},
                use_velocities=self.config.num_velocities > 0,
                num_velocities=max(1, self.config.num_velocities),
                use_time_signatures=self.config.time_signatures,
                use_tempos=self.config.tempos,
                special_tokens=["PAD", "BOS", "EOS"],
            )
        )
        self.pad_id = int(self._remi.pad_token_id)
        self.bos_id = int(self._remi["BOS_None"])
        self.eos_id = int(self._remi["EOS_None"])

    def __len__(self) -> int:
        return len(self._remi)

    @property
    def vocab_size(self) -> int:
        return len(self._remi)

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the parameters and the id → token table: equal iff ids mean the same events."""
        table = sorted(self._remi.vocab.items(), key=lambda item: item[1])
        return stable_hash({"config": asdict(self.config), "vocab": table}, 16)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    def params_json(self) -> str:
        """miditok's own parameter file (`tokenizer.json`), for use outside genloop."""
        from importlib.metadata import version

        params = self._remi.config.to_dict(serialize=True)
        return json.dumps({"tokenization": "REMI", "miditok_version": version("miditok"), "config": params})

    # -- MIDI → ids ---------------------------------------------------------------------------------

    def encode(self, midi: bytes, *, where: str = "MIDI file") -> list[int]:
        """[BOS, events…, EOS] of a Standard MIDI File; a DataError naming `where` if unreadable."""
        import symusic

        try:
            score: Any = symusic.Score.from_midi(midi)  # Any: symusic's stubs lack the track API
        except Exception as exc:  # symusic raises RuntimeError/ValueError on malformed files
            raise DataError(
                f"{where}: not a readable MIDI file ({exc})",
                hint="re-run `genloop clean` (its parse step drops unreadable music)",
            ) from None
        merged: Any = symusic.Track(name="music", program=0, is_drum=False)
        for track in score.tracks:
            if not track.is_drum:
                merged.notes.extend(track.notes)
        merged.notes.sort()
        score.tracks = [merged]
        sequences = self._remi.encode(score)
        ids = sequences[0].ids if sequences else []
        return [self.bos_id, *ids, self.eos_id]

    # -- ids → MIDI ---------------------------------------------------------------------------------

    def decode(self, ids: list[int]) -> bytes:
        """A Standard MIDI File of the events in `ids` (specials and PAD ignored; stops at EOS)."""
        events = []
        for token in ids:
            if token == self.eos_id:
                break
            if token not in (self.pad_id, self.bos_id) and 0 <= token < self.vocab_size:
                events.append(int(token))
        score = self._remi.decode([events])
        return bytes(score.dumps_midi())

    # -- augmentation -------------------------------------------------------------------------------

    def pitch_shift_table(self, max_semitones: int) -> torch.Tensor:
        """(2·max + 1, V) long: row k maps each id to its id transposed by k − max semitones.

        Non-pitch tokens map to themselves; a pitch pushed out of range maps to −1 (the
        caller then keeps that window untransposed).
        """
        vocab = self._remi.vocab
        table = torch.arange(self.vocab_size).repeat(2 * max_semitones + 1, 1)
        for name, token in vocab.items():
            if not name.startswith("Pitch_"):
                continue
            pitch = int(name.removeprefix("Pitch_"))
            for row, shift in enumerate(range(-max_semitones, max_semitones + 1)):
                table[row, token] = vocab.get(f"Pitch_{pitch + shift}", -1)
        return table
