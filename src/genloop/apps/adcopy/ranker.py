"""Ranking a product's valid candidates: fluency, room under the limit, novelty, and what people liked.

    base(c)   = 2.0·fluency + 0.2·margin − 0.15·repairs + trust·(p_liked − ½)
        fluency  exp(mean log p(token | prompt)): the model's geometric-mean token probability
                 (absolute, so two near-equal lines stay near-equal, unlike a min-max rescaling)
        margin   1 − length / max_length (a line that fits with room beats one at the edge)
        repairs  hooks and cuts the line needed (a line the model wrote whole reads better)
        p_liked  the learned preference below (½ — no opinion — until it has been fitted)
        trust    rows / (rows + TRUST_ROWS): the learned part counts as its evidence grows (fitted
                 on 96 noisy rows it picked lines less liked than its own pool; on 1,000 it
                 weighs 0.77)
    order     greedy maximal marginal relevance (Carbonell & Goldstein 1998): next = the candidate
              maximising base + 0.5·(1 − max similarity to those already chosen), similarity =
              Jaccard of word (en) or character (zh) bigrams — so the top N are not ten paraphrases

The learned part is a logistic regression over hashed features (word and character n-grams of
the line, its attributes, and attribute × word crosses: "tone=bold ∧ trail"), fitted from
(text, attributes, liked) rows — like/click feedback on published candidates, or an imported
file. Full-batch gradient descent with an L2 prior, numpy only. Saved beside the app as
`ranker.json` (config, bias, how many rows) + `ranker.npy` (weights), written atomically.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genloop.errors import DataError
from genloop.storage import atomic_write_bytes, atomic_write_json

BUCKETS = 1 << 14
EPOCHS = 300
LEARNING_RATE = 0.5
L2 = 1e-3
WEIGHTS = {"fluency": 2.0, "margin": 0.2, "repairs": -0.15, "learned": 1.0}
TRUST_ROWS = 300
"""Feedback rows at which the learned part carries half its weight (see `trust`)."""
NOVELTY = 0.5
_TOKENS = re.compile(r"[\u3400-\u9fff]|[A-Za-z0-9']+")
ATTRIBUTE_KEYS = ("category", "tone", "audience", "language")


def tokens(text: str) -> list[str]:
    """Lower-cased English words and single Han characters, in order."""
    return [token.lower() for token in _TOKENS.findall(text)]


def bigrams(text: str) -> set[tuple[str, str]]:
    words = tokens(text)
    return set(itertools.pairwise(words)) or {(w, "") for w in words}


def similarity(a: str, b: str) -> float:
    """Jaccard of the two lines' token bigrams (0: nothing shared, 1: the same bigrams)."""
    x, y = bigrams(a), bigrams(b)
    return len(x & y) / len(x | y) if x or y else 1.0


def features(text: str, attributes: Mapping[str, Any]) -> list[str]:
    words = tokens(text)
    found = [f"w:{w}" for w in words] + [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
    lowered = text.lower()
    found += [f"c3:{lowered[i : i + 3]}" for i in range(len(lowered) - 2)]
    values = [f"{key}={str(attributes.get(key) or '').lower()}" for key in ATTRIBUTE_KEYS]
    found += [f"a:{value}" for value in values]
    found += [f"x:{value}^{w}" for value in values[:2] for w in set(words)]  # category/tone × word
    return found


def _encode(text: str, attributes: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, L2-normalised values) of one line's features."""
    counts: dict[int, float] = {}
    for feature in features(text, attributes):
        index = zlib.crc32(feature.encode("utf-8")) % BUCKETS
        counts[index] = counts.get(index, 0.0) + 1.0
    indices = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    values = np.log1p(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
    norm = float(np.linalg.norm(values)) or 1.0
    return indices, values / norm


@dataclass(frozen=True)
class FeedbackRow:
    text: str
    attributes: dict[str, Any]
    liked: bool


@dataclass
class LearnedPreference:
    weights: np.ndarray = field(default_factory=lambda: np.zeros(BUCKETS))
    bias: float = 0.0
    rows: int = 0
    """How many feedback rows it was fitted on (0: not fitted, p = ½ for every line)."""

    @property
    def fitted(self) -> bool:
        return self.rows > 0

    def probability(self, text: str, attributes: Mapping[str, Any]) -> float:
        if not self.fitted:
            return 0.5
        indices, values = _encode(text, attributes)
        logit = float(self.weights[indices] @ values) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))

    @classmethod
    def fit(cls, rows: Sequence[FeedbackRow], *, epochs: int = EPOCHS) -> LearnedPreference:
        """Maximise Σ log p(liked_i | line_i) − L2/2·‖w‖² by full-batch gradient descent."""
        labels = {row.liked for row in rows}
        if len(rows) < 2 or len(labels) < 2:
            raise DataError(
                f"the ranker needs liked and not-liked examples (got {len(rows)} row(s), "
                f"liked values {sorted(labels)})",
                hint="collect feedback on more published candidates first",
            )
        encoded = [_encode(row.text, row.attributes) for row in rows]
        lengths = np.array([len(indices) for indices, _ in encoded])
        row_of = np.repeat(np.arange(len(rows)), lengths)
        columns = np.concatenate([indices for indices, _ in encoded])
        values = np.concatenate([v for _, v in encoded])
        y = np.array([1.0 if row.liked else 0.0 for row in rows])
        weights, bias = np.zeros(BUCKETS), 0.0
        for _ in range(epochs):
            logits = np.bincount(row_of, weights=weights[columns] * values, minlength=len(rows)) + bias
            error = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30))) - y  # dL/dlogit, (N,)
            gradient = np.bincount(columns, weights=error[row_of] * values, minlength=BUCKETS)
            weights -= LEARNING_RATE * (gradient / len(rows) + L2 * weights)
            bias -= LEARNING_RATE * float(error.mean())
        return cls(weights, bias, len(rows))

    def save(self, folder: Path) -> None:
        buffer = io.BytesIO()
        np.save(buffer, self.weights.astype(np.float32))
        atomic_write_bytes(folder / "ranker.npy", buffer.getvalue())
        atomic_write_json(
            folder / "ranker.json",
            {"buckets": BUCKETS, "bias": self.bias, "rows": self.rows, "features": "adcopy.ranker v1"},
        )

    @classmethod
    def load(cls, folder: Path) -> LearnedPreference:
        """The fitted preference saved in `folder`, or an unfitted one when there is none."""
        config_path = folder / "ranker.json"
        if not config_path.is_file() or not (folder / "ranker.npy").is_file():
            return cls()
        config = json.loads(config_path.read_text(encoding="utf-8"))
        weights = np.load(folder / "ranker.npy").astype(np.float64)
        if config.get("buckets") != BUCKETS or weights.shape != (BUCKETS,):
            raise DataError(
                f"{config_path}: saved for {config.get('buckets')} buckets, this genloop uses {BUCKETS}",
                hint="fit the ranker again: genloop adcopy fit-ranker FEEDBACK",
            )
        return cls(weights, float(config["bias"]), int(config["rows"]))


@dataclass
class Scored:
    text: str
    base: float
    parts: dict[str, float]
    novelty: float = 1.0
    score: float = 0.0


def rank(
    texts: Sequence[str],
    *,
    log_likelihoods: Sequence[float],
    lengths: Sequence[int],
    repairs: Sequence[int],
    max_length: int,
    attributes: Mapping[str, Any],
    preference: LearnedPreference,
) -> list[Scored]:
    """`texts` in ranked order (see the module docstring), each with its score and its parts."""
    trust = preference.rows / (preference.rows + TRUST_ROWS)
    pool = []
    for text, ll, length, repaired in zip(texts, log_likelihoods, lengths, repairs, strict=True):
        parts = {
            "fluency": math.exp(ll),
            "margin": 1.0 - length / max_length,
            "repairs": float(repaired),
            "learned": trust * (preference.probability(text, attributes) - 0.5),
            "log_likelihood": ll,
        }
        base = sum(WEIGHTS[name] * parts[name] for name in WEIGHTS)
        pool.append(Scored(text, base, parts))
    chosen: list[Scored] = []
    while pool:
        for item in pool:
            item.novelty = 1.0 - max((similarity(item.text, c.text) for c in chosen), default=0.0)
            item.score = item.base + NOVELTY * item.novelty
        best = max(pool, key=lambda item: item.score)
        pool.remove(best)
        chosen.append(best)
    return chosen
