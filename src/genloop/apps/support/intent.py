"""Intent classification: multinomial logistic regression over hashed n-gram features (torch).

scikit-learn is not a genloop dependency (only the optional profanity extra pins it), so the
classifier is the same model written in a few lines of torch, fastText-style:

    x = L2-normalised log(1 + count) of the query's hashed features        (B, F) sparse
    p(intent | query) = softmax(x W + b)                                   W: (F, C)

x is a sparse COO tensor and `torch.sparse.mm(x, W)` the product, so training never materialises
the (B, F) matrix. Full-batch Adam with weight decay (an L2 prior on W).
Saved as `intent.safetensors` + `intent.json` (labels, buckets): loading needs nothing else.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from genloop.apps.support.tokens import bucket, features
from genloop.errors import DataError

BUCKETS = 1 << 14
EPOCHS = 80
LEARNING_RATE = 0.1
WEIGHT_DECAY = 1e-5


def _encode(texts: Sequence[str], buckets: int) -> torch.Tensor:
    """(B, F) sparse: each text's buckets with L2-normalised 1 + log(count) values."""
    rows: list[int] = []
    columns: list[int] = []
    weights: list[float] = []
    for row, text in enumerate(texts):
        counts = Counter(bucket(feature, buckets) for feature in features(text))
        values = {index: 1.0 + math.log(count) for index, count in counts.items()}
        norm = math.sqrt(sum(v * v for v in values.values())) or 1.0
        rows += [row] * len(values)
        columns += values.keys()
        weights += (v / norm for v in values.values())
    indices = torch.tensor([rows, columns], dtype=torch.long).reshape(2, -1)
    return torch.sparse_coo_tensor(
        indices, torch.tensor(weights, dtype=torch.float32), (len(texts), buckets), check_invariants=False
    ).coalesce()


@dataclass
class IntentPrediction:
    intent: str
    confidence: float
    """The model's probability of `intent` (0-1)."""


class IntentClassifier(nn.Module):
    def __init__(self, labels: Sequence[str], buckets: int = BUCKETS) -> None:
        super().__init__()
        self.labels = list(labels)
        self.buckets = buckets
        self.weight = nn.Parameter(torch.zeros(buckets, len(self.labels)))  # (F, C)
        self.bias = nn.Parameter(torch.zeros(len(self.labels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sparse.mm(x, self.weight) + self.bias  # (B, C) logits

    @classmethod
    def train_on(cls, texts: Sequence[str], labels: Sequence[str], *, seed: int = 0) -> IntentClassifier:
        names = sorted(set(labels))
        if len(names) < 2:
            raise DataError(
                f"the intent model needs 2+ intents in the training tickets (found {names})",
                hint="label the tickets with an `intent` column, or use the built-in corpus",
            )
        torch.manual_seed(seed)
        model = cls(names)
        encoded = _encode(texts, model.buckets)
        target = torch.tensor([names.index(label) for label in labels])
        optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        # One thread: the steps are ~1 ms of work each, and on a loaded machine torch's thread
        # pool spent 8x longer waiting for cores than computing (measured: 0.4 s vs 0.05 s a step).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for _ in range(EPOCHS):
                optimiser.zero_grad()
                loss = nn.functional.cross_entropy(model(encoded), target)
                loss.backward()
                optimiser.step()
        finally:
            torch.set_num_threads(threads)
        return model.eval()

    @torch.no_grad()
    def predict(self, texts: Sequence[str]) -> list[IntentPrediction]:
        if not texts:
            return []
        probabilities = self(_encode(texts, self.buckets)).softmax(dim=-1)
        best = probabilities.max(dim=-1)
        return [
            IntentPrediction(self.labels[int(i)], round(float(p), 4))
            for p, i in zip(best.values, best.indices, strict=True)
        ]

    def save(self, folder: Path) -> None:
        save_file(
            {"weight": self.weight.detach().contiguous(), "bias": self.bias.detach()},
            str(folder / "intent.safetensors"),
        )
        config = {"labels": self.labels, "buckets": self.buckets, "features": "tokens.features v1"}
        (folder / "intent.json").write_text(
            json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8"
        )

    @classmethod
    def load(cls, folder: Path) -> IntentClassifier:
        config = json.loads((folder / "intent.json").read_text(encoding="utf-8"))
        model = cls(config["labels"], config["buckets"])
        tensors = load_file(str(folder / "intent.safetensors"))
        with torch.no_grad():
            model.weight.copy_(tensors["weight"])
            model.bias.copy_(tensors["bias"])
        return model.eval()
