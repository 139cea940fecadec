"""Music safety check: a generated melody that copies a training piece's (memorisation).

    novelty   fails when the melody shares a run of ≥ min_intervals pitch intervals with a training piece

The melody is the skyline (highest pitch at each onset, `evaluate.music_metrics.melody`) and
is compared as pitch intervals, so a copy transposed to another key is still a copy. The
longest shared run comes from the evaluate stage's `NgramIndex` (verbatim.py) over interval
"words" (u2 = up 2 semitones, d3, r0), built once per job from the training MIDI.

Needs mido (`genloop[music]`), hence not a default check: add it per channel,
`safety.music = ["novelty"]`. A WAV or MusicXML artifact (after `render-wav`/`musicxml`) is
checked through the MIDI its processor kept in `meta["midi"]`; without it there are no notes
to compare, and it fails with that reason, so a person looks at it.
"""

from __future__ import annotations

import numpy as np

from genloop.evaluate.music_metrics import melody, parse_midi
from genloop.evaluate.verbatim import NgramIndex
from genloop.generate.artifact import Artifact
from genloop.generate.safety.registry import SafetyContext, Verdict, register_check
from genloop.generate.safety.training_data import describe, training_datasets, training_records

INDEX_N = 4  # intervals per indexed n-gram: the resolution of the longest-run measure


def interval_words(midi: bytes) -> str:
    """The melody's pitch intervals as words: "u2 d1 r0 …" (up, down, repeat; semitones)."""
    intervals = np.diff(melody(parse_midi(midi))).tolist()
    return " ".join(("u" if i > 0 else "d" if i < 0 else "r") + str(abs(i)) for i in intervals)


class Novelty:
    name = "novelty"
    modalities = frozenset({"music"})

    def __init__(self, *, min_intervals: int) -> None:
        self.min_intervals = min_intervals

    def index(self, context: SafetyContext) -> NgramIndex | str:
        key = f"novelty-index:{context.model_version_id}"
        if key not in context.cache:
            pieces = [interval_words(record.payload) for record in training_records(context, "music")]
            if sum(len(piece.split()) for piece in pieces) < INDEX_N:
                context.cache[key] = f"model {context.model_version_id} has no recorded training melodies"
            else:
                context.cache[key] = NgramIndex.build(pieces, n=INDEX_N)
        index: NgramIndex | str = context.cache[key]
        return index

    def check(self, artifact: Artifact, context: SafetyContext) -> Verdict:
        midi = artifact.data if artifact.format == "mid" else artifact.meta.get("midi")
        if not isinstance(midi, bytes):
            reason = (
                f"not checked: a {artifact.format} artifact has no notes to compare "
                '(a processor that renders MIDI should keep it in meta["midi"])'
            )
            return Verdict(self.name, False, reason, details={"checked": False})
        index = self.index(context)
        if isinstance(index, str):
            return Verdict(self.name, True, f"not checked: {index}", details={"checked": False})
        overlap = index.overlap(interval_words(midi))
        longest = overlap.longest_match
        details = {
            "checked": True, "longest_interval_run": longest, "intervals": overlap.tokens,
            "min_intervals": self.min_intervals, "training": describe(training_datasets(context)),
        }  # fmt: skip
        if longest >= self.min_intervals:
            reason = (
                f"melody copies a training piece: {longest} pitch intervals in a row "
                f"(limit {self.min_intervals - 1})"
            )
            return Verdict(self.name, False, reason, float(longest), details)
        run = (
            f"longest shared run {longest} intervals" if longest else f"no shared run of {INDEX_N}+ intervals"
        )
        return Verdict(self.name, True, f"novel melody ({run})", float(longest), details)


@register_check("novelty")
def novelty(*, min_intervals: int = 16) -> Novelty:
    """Fail at a run of ≥ `min_intervals` melodic intervals shared with one training piece."""
    if min_intervals < INDEX_N:
        raise ValueError(f"min_intervals must be ≥ {INDEX_N}, got {min_intervals}")
    try:
        import mido  # noqa: F401
    except ImportError as error:
        from genloop.errors import MissingDependencyError

        raise MissingDependencyError(
            "safety check 'novelty' reads MIDI with mido", hint='pip install "genloop[music]"'
        ) from error
    return Novelty(min_intervals=min_intervals)
