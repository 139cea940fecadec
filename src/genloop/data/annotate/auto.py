"""Auto-labelling by nearest neighbours: unlabelled records vote among their k nearest labelled ones.

For an unlabelled record q with cosine similarities s_j to its k nearest labelled
neighbours j (labels y_j), each neighbour votes with weight w_j = max(s_j, 0)::

    ŷ = argmax_c Σ_{j : y_j = c} w_j        confidence = Σ_{j : y_j = ŷ} w_j / Σ_j w_j

(confidence 0 when every weight is 0). At or above `min_confidence` the label is
applied; below it the record stays unlabelled and is queued for people, with the
suggestion attached. Either way the record carries
`meta["auto_label"] = {"label", "confidence", "method"}`.

Embeddings are in `embeddings.py` (pixel baseline for images; hashed n-gram TF-IDF or
MiniLM for text). Building the suggestions is one pass over the dataset that keeps
the embeddings of its image/text records in memory (N × 784 floats for 28×28
images, N × 4096 for text), fine to ~10⁵ records on a laptop; a larger corpus wants
an ANN index, which is not here yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genloop.data.annotate.embeddings import pixel_embeddings, text_embedding_method, text_embeddings
from genloop.data.pipeline import StepOutput
from genloop.data.record import Record

QUERY_CHUNK = 512  # queries compared at once: (chunk, n_labelled) similarities in memory


@dataclass(frozen=True)
class Suggestion:
    label: str
    confidence: float
    method: str

    def as_meta(self) -> dict[str, Any]:
        return {"label": self.label, "confidence": round(self.confidence, 4), "method": self.method}


def knn_vote(
    reference: np.ndarray, reference_labels: Sequence[str], queries: np.ndarray, *, k: int
) -> list[tuple[str, float]]:
    """(label, confidence) for each row of `queries` (Q, D) from its k most similar `reference` rows (R, D).

    Rows are expected L2-normalised, so the dot product is the cosine similarity. Ties
    between labels go to the one whose best neighbour is closer.
    """
    if len(reference) == 0:
        return []
    k = min(k, len(reference))
    labels = np.asarray(reference_labels, dtype=object)
    results: list[tuple[str, float]] = []
    for start in range(0, len(queries), QUERY_CHUNK):
        similarity = queries[start : start + QUERY_CHUNK] @ reference.T  # (q, R)
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]  # (q, k), unordered
        for row, neighbours in enumerate(nearest):
            order = neighbours[np.argsort(-similarity[row, neighbours])]  # closest first
            votes: dict[str, float] = {}
            for j in order:
                votes[labels[j]] = votes.get(labels[j], 0.0) + max(float(similarity[row, j]), 0.0)
            total = sum(votes.values())
            best = max(votes, key=lambda label: votes[label])  # first-inserted (closest) wins ties
            results.append((str(best), votes[best] / total if total > 0 else 0.0))
    return results


def _embed(modality: str, payloads: Sequence[bytes], text_method: str) -> np.ndarray:
    if modality == "image":
        return pixel_embeddings(payloads)
    return text_embeddings([p.decode("utf-8", errors="replace") for p in payloads], text_method)


def suggest_labels(
    records: Iterable[Record], *, k: int = 5, text_embedding: str = "auto"
) -> dict[str, Suggestion]:
    """A suggestion for every unlabelled image/text record that has labelled records of its modality.

    Keyed by record id. Music and modalities without labelled examples get none.
    """
    text_method = text_embedding_method(text_embedding)
    methods = {"image": "knn-pixels", "text": f"knn-{text_method}"}
    by_modality: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if record.modality in methods:
            by_modality[record.modality].append(record)
    suggestions: dict[str, Suggestion] = {}
    for modality, group in by_modality.items():
        labelled = [r for r in group if r.label]
        unlabelled = [r for r in group if not r.label]
        if not labelled or not unlabelled:
            continue
        vectors = _embed(modality, [r.payload for r in labelled + unlabelled], text_method)
        votes = knn_vote(
            vectors[: len(labelled)], [str(r.label) for r in labelled], vectors[len(labelled) :], k=k
        )
        for record, (label, confidence) in zip(unlabelled, votes, strict=True):
            suggestions[record.id] = Suggestion(label, confidence, methods[modality])
    return suggestions


class AutoLabeler:
    """A data step: apply precomputed suggestions to unlabelled records; drops nothing.

    Confident suggestions become the label; the others only annotate `meta` and the
    record stays unlabelled (a later `require-label` step drops it, and `annotate`
    queues it for people).
    """

    name = "auto-label"
    parallel_safe = True  # a lookup in precomputed suggestions (picklable)

    def __init__(self, suggestions: dict[str, Suggestion], *, min_confidence: float) -> None:
        self.suggestions = suggestions
        self.min_confidence = min_confidence

    def __call__(self, batch: list[Record]) -> StepOutput:
        """Label the batch; the report counts `auto:applied` and `auto:queued`."""
        kept = [self.label(record) for record in batch]
        counters: dict[str, int] = {}
        for record in kept:
            if "auto_label" in record.meta and record.id in self.suggestions:
                key = "auto:applied" if record.label else "auto:queued"
                counters[key] = counters.get(key, 0) + 1
        return StepOutput(kept=kept, counters=counters)

    def label(self, record: Record) -> Record:
        suggestion = self.suggestions.get(record.id)
        if record.label or suggestion is None:
            return record
        meta = {**record.meta, "auto_label": suggestion.as_meta()}
        label = suggestion.label if suggestion.confidence >= self.min_confidence else None
        return record.with_changes(label=label, meta=meta)

    def low_confidence(self) -> dict[str, Suggestion]:
        """The suggestions too unsure to apply: these records go to the human queue."""
        return {rid: s for rid, s in self.suggestions.items() if s.confidence < self.min_confidence}
