"""Simulated people's tastes: hidden preference functions the models never see.

A persona scores what it is shown with `appeal(item) -> [0, 1]`, from the file alone
(the pixels, the text, the notes) — never from genloop's catalog, conditions or labels,
just as a person in front of the gallery sees only the content:

    likes-class:LABEL   images a recogniser (the persona's "eyes") takes for LABEL
    bold-strokes        images with much ink (mean brightness of the strokes)
    short-cheerful      short lines with a positive tone (English lexicon; snownlp for Chinese)
    major-key           tunes whose pitch-class profile fits a major key better than a minor one

`feedback/simulate.py` turns appeal into impressions, likes and dislikes with a base
rate, noise and position bias, through the public HTTP API.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from genloop.errors import GenloopError

Recogniser = Callable[[Image.Image], dict[str, float]]
"""An image → probability per class label (the persona's perception, e.g. a trained classifier)."""


@dataclass(frozen=True)
class ViewedItem:
    publication_id: str
    modality: str
    data: bytes
    """The file as served (PNG/JPEG/WebP, UTF-8 text, MIDI)."""
    position: int
    """0 = first in the listing the viewer saw."""


class Persona(Protocol):
    @property
    def name(self) -> str: ...

    def appeal(self, item: ViewedItem) -> float: ...


def _image(item: ViewedItem) -> Image.Image:
    try:
        with Image.open(io.BytesIO(item.data)) as image:
            return image.convert("L")
    except OSError as exc:
        raise GenloopError(f"publication {item.publication_id}: the file is not an image ({exc})") from None


@dataclass(frozen=True)
class LikesClass:
    label: str
    recognise: Recogniser

    @property
    def name(self) -> str:
        return f"likes-class:{self.label}"

    def appeal(self, item: ViewedItem) -> float:
        if item.modality != "image":
            return 0.0
        return float(self.recognise(_image(item)).get(self.label, 0.0))


@dataclass(frozen=True)
class BoldStrokes:
    """Ink = mean brightness of the 28×28 thumbnail (white strokes on black); appeal rises
    smoothly through `threshold`."""

    threshold: float = 0.16
    softness: float = 0.02
    name: str = "bold-strokes"

    def appeal(self, item: ViewedItem) -> float:
        if item.modality != "image":
            return 0.0
        thumbnail = np.asarray(_image(item).resize((28, 28), Image.Resampling.BILINEAR), dtype=np.float64)
        ink = float(thumbnail.mean() / 255.0)
        return 1.0 / (1.0 + math.exp(-(ink - self.threshold) / self.softness))


POSITIVE_EN = frozenset(
    (
        "good",
        "great",
        "happy",
        "love",
        "lovely",
        "wonderful",
        "bright",
        "sunny",
        "joy",
        "joyful",
        "smile",
        "smiling",
        "fun",
        "nice",
        "kind",
        "beautiful",
        "delight",
        "delightful",
        "glad",
        "cheerful",
        "hope",
        "hopeful",
        "warm",
        "sweet",
        "best",
        "fine",
        "laugh",
        "friend",
    )
)
NEGATIVE_EN = frozenset(
    (
        "bad",
        "sad",
        "angry",
        "hate",
        "awful",
        "terrible",
        "dark",
        "gloomy",
        "cry",
        "pain",
        "fear",
        "lonely",
        "cold",
        "death",
        "dead",
        "die",
        "worst",
        "sorrow",
        "grief",
        "miserable",
        "tired",
        "ugly",
        "war",
        "hurt",
    )
)
_WORD = re.compile(r"[A-Za-z']+")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def cheerfulness(text: str) -> float:
    """0 (gloomy) … 1 (cheerful): snownlp's sentiment for Chinese, a word lexicon for English."""
    if len(_CJK.findall(text)) > len(_WORD.findall(text)):
        try:
            from snownlp import SnowNLP
        except ImportError as exc:
            raise GenloopError(
                "the short-cheerful persona needs snownlp for Chinese text",
                hint="pip install 'genloop[corpora]'",
            ) from exc
        return float(SnowNLP(text).sentiments)
    words = [w.lower() for w in _WORD.findall(text)]
    positive = sum(w in POSITIVE_EN for w in words)
    negative = sum(w in NEGATIVE_EN for w in words)
    return (positive + 0.5) / (positive + negative + 1.0)


@dataclass(frozen=True)
class ShortCheerful:
    """Appeal = cheerfulness × shortness, shortness = 1 for ≤ `short` characters, falling to 0
    at 4 × `short` (the AI-generated marker line is not part of the reading)."""

    short: int = 60
    name: str = "short-cheerful"

    def appeal(self, item: ViewedItem) -> float:
        if item.modality != "text":
            return 0.0
        text = _reading(item.data.decode("utf-8", errors="replace"))
        length = len(text)
        shortness = 1.0 if length <= self.short else max(0.0, 1.0 - (length - self.short) / (3 * self.short))
        return cheerfulness(text) * shortness


def _reading(text: str) -> str:
    """The text a reader reads: without front matter and without the AI-generated line."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            text = text[end + 5 :]
    lines = [
        line for line in text.strip().splitlines() if "AI生成" not in line and "AI-generated" not in line
    ]
    return "\n".join(lines).strip()


# Krumhansl–Kessler key profiles (probe-tone ratings), C major / C minor.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_mode(pitch_class_histogram: np.ndarray) -> tuple[str, float]:
    """("major" | "minor", best correlation) over the 24 rotations of the two profiles."""
    best = ("major", -2.0)
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(pitch_class_histogram, np.roll(profile, tonic))[0, 1])
            if r > best[1]:
                best = (mode, r)
    return best


@dataclass(frozen=True)
class MajorKey:
    name: str = "major-key"

    def appeal(self, item: ViewedItem) -> float:
        if item.modality != "music":
            return 0.0
        try:
            import mido
        except ImportError as exc:
            raise GenloopError(
                "the major-key persona needs mido", hint="pip install 'genloop[music]'"
            ) from exc
        histogram = np.zeros(12)
        try:
            midi = mido.MidiFile(file=io.BytesIO(item.data))
        except (OSError, ValueError, EOFError):
            return 0.0  # an unreadable tune is not liked
        for message in midi:
            if message.type == "note_on" and message.velocity > 0:
                histogram[message.note % 12] += 1
        if histogram.sum() == 0 or np.all(histogram == histogram[0]):
            return 0.0
        mode, fit = key_mode(histogram)
        return max(0.0, fit) if mode == "major" else 0.0


def persona_from_spec(spec: str, *, recognise: Recogniser | None = None) -> Persona:
    """`likes-class:7`, `bold-strokes[:0.2]`, `short-cheerful[:60]`, `major-key`."""
    name, _, argument = spec.partition(":")
    if name == "likes-class":
        if not argument:
            raise GenloopError("likes-class needs a label: likes-class:LABEL (e.g. likes-class:7)")
        if recognise is None:
            raise GenloopError("likes-class needs a recogniser (the workspace's trained classifier)")
        return LikesClass(argument, recognise)
    try:
        if name == "bold-strokes":
            return BoldStrokes(float(argument)) if argument else BoldStrokes()
        if name == "short-cheerful":
            return ShortCheerful(int(argument)) if argument else ShortCheerful()
    except ValueError:
        raise GenloopError(f"persona {spec!r}: {argument!r} is not a number") from None
    if name == "major-key":
        return MajorKey()
    raise GenloopError(
        f"unknown persona {spec!r}",
        hint="personas: likes-class:LABEL, bold-strokes[:INK], short-cheerful[:CHARS], major-key",
    )
