"""A persisted retrieval index over knowledge-base entries: BM25, optional embeddings, hit@k.

What is indexed per entry: its answer, and its question too when the entry is in the `train`
split. Held-out entries are findable only through their answer, so a held-out question is a
query the index has never seen (the honest way to measure retrieval on this corpus).

BM25 (Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework"), own implementation:

    score(q, d) = Σ_t∈q  idf(t) · tf(t,d)·(k1 + 1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl))
    idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))

over `tokens.terms` (English words, Chinese character bigrams). Embeddings (optional), cosine
similarity: all-MiniLM-L6-v2 (`minilm`) for English queries, multilingual-e5-small (`e5`, needs
AVX2) for Chinese ones (and for English when MiniLM is absent); a query with no backend for its
language uses BM25. `hybrid` fuses BM25 and embedding rankings by reciprocal rank (Cormack et al.
2009): Σ 1 / (60 + rank); on the built-in corpus it ranks below embeddings alone, so `auto` uses
embeddings where they apply and BM25 elsewhere.

On disk (folder `index/` of the app):

    bm25.json        k1, b, document lengths, postings {term: [[doc, tf], ...]}
    embeddings-<backend>.npy   (N, 384) float32, L2-normalised, one per backend built
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genloop.apps.support.knowledge import Entry
from genloop.apps.support.tokens import HAN, terms
from genloop.errors import GenloopError
from genloop.models.text_encoders import TEXT_ENCODERS, text_encoder

K1, B = 1.2, 0.75
RRF_K = 60
EMBEDDINGS = ("auto", "none", "minilm", "e5", "minilm+e5")
MODES = ("auto", "bm25", "embeddings", "hybrid")
"""auto: embeddings where they apply (measured best, docs/benchmarks.md), else BM25."""
_HAN_CHAR = re.compile(f"[{HAN}]")


def document_text(entry: Entry) -> str:
    return f"{entry.question}\n{entry.answer}" if entry.split == "train" else entry.answer


def is_chinese(text: str) -> bool:
    """More Han characters than Latin letters: the query is Chinese for retrieval purposes."""
    han = len(_HAN_CHAR.findall(text))
    return han > sum(char.isascii() and char.isalpha() for char in text) / 4


@dataclass
class Hit:
    entry: Entry
    score: float
    rank: int
    method: str


class BM25:
    def __init__(
        self, postings: dict[str, list[list[int]]], lengths: list[int], k1: float = K1, b: float = B
    ):
        self.postings, self.lengths, self.k1, self.b = postings, lengths, k1, b
        self.average_length = sum(lengths) / max(len(lengths), 1)

    @classmethod
    def build(cls, texts: Sequence[str]) -> BM25:
        postings: dict[str, list[list[int]]] = defaultdict(list)
        lengths = []
        for doc, text in enumerate(texts):
            counts = Counter(terms(text))
            lengths.append(sum(counts.values()))
            for term, tf in counts.items():
                postings[term].append([doc, tf])
        return cls(dict(postings), lengths)

    def scores(self, query: str) -> np.ndarray:
        """(N,) BM25 score of every document for `query` (0 where no term is shared)."""
        scores = np.zeros(len(self.lengths), dtype=np.float64)
        n = len(self.lengths)
        for term, query_tf in Counter(terms(query)).items():
            posting = self.postings.get(term)
            if not posting:
                continue
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for doc, tf in posting:
                norm = self.k1 * (1 - self.b + self.b * self.lengths[doc] / self.average_length)
                scores[doc] += query_tf * idf * tf * (self.k1 + 1) / (tf + norm)
        return scores

    def to_json(self) -> dict[str, object]:
        return {"k1": self.k1, "b": self.b, "lengths": self.lengths, "postings": self.postings}

    @classmethod
    def from_json(cls, value: dict[str, object]) -> BM25:
        return cls(value["postings"], value["lengths"], float(value["k1"]), float(value["b"]))  # type: ignore[arg-type]


def _usable(encoder: str) -> str | None:
    """None when `encoder` can run here, else why not (with the pip line)."""
    try:
        TEXT_ENCODERS[encoder].check_available()
    except GenloopError as exc:
        return f"{exc.message}; {exc.hint}"
    return None


def resolve_embeddings(requested: str) -> tuple[str, str]:
    """(backends joined by "+", or "none"; a note saying what retrieval will use and why).

    `auto`: MiniLM for English and e5 for Chinese, each when it can run here (measured best
    per language, docs/benchmarks.md); BM25 alone, with the reason, when neither can.
    """
    if requested not in EMBEDDINGS:
        raise GenloopError(
            f"unknown embeddings {requested!r}", hint=f"choose one of: {', '.join(EMBEDDINGS)}"
        )
    if requested == "none":
        return "none", "BM25 only (embeddings: none)"
    if requested != "auto":
        for name in requested.split("+"):  # explicit: fail loudly, with the pip line
            TEXT_ENCODERS[name].check_available()
        return requested, f"BM25 + {requested} embeddings"
    chosen, notes = [], []
    for name, language in (("minilm", "English"), ("e5", "Chinese")):
        problem = _usable(name)
        if problem is None:
            chosen.append(name)
            notes.append(f"{name} for {language} queries")
        else:
            notes.append(f"BM25 for {language} queries ({name} unavailable: {problem})")
    return "+".join(chosen) or "none", "; ".join(notes)


class SupportIndex:
    def __init__(self, entries: list[Entry], bm25: BM25, vectors: dict[str, np.ndarray]) -> None:
        self.entries, self.bm25, self.vectors = entries, bm25, vectors

    @property
    def encoder(self) -> str:
        return "+".join(self.vectors) or "none"

    @classmethod
    def build(cls, entries: list[Entry], encoder: str = "none") -> SupportIndex:
        texts = [document_text(entry) for entry in entries]
        names = [] if encoder == "none" else encoder.split("+")
        return cls(entries, BM25.build(texts), {name: _encode(name, texts) for name in names})

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bm25.json").write_text(
            json.dumps(self.bm25.to_json(), ensure_ascii=False), encoding="utf-8"
        )
        for name, vectors in self.vectors.items():
            np.save(folder / f"embeddings-{name}.npy", vectors)

    @classmethod
    def load(cls, folder: Path, entries: list[Entry], encoder: str) -> SupportIndex:
        bm25 = BM25.from_json(json.loads((folder / "bm25.json").read_text(encoding="utf-8")))
        names = [] if encoder == "none" else encoder.split("+")
        missing = [name for name in names if not (folder / f"embeddings-{name}.npy").is_file()]
        if len(bm25.lengths) != len(entries) or missing:
            raise GenloopError(
                f"the index in {folder} does not match its knowledge base ({len(bm25.lengths)} indexed, "
                f"{len(entries)} entries; embeddings missing: {', '.join(missing) or 'none'})",
                hint="rebuild it: genloop support build",
            )
        return cls(entries, bm25, {name: np.load(folder / f"embeddings-{name}.npy") for name in names})

    def available_modes(self) -> list[str]:
        return ["bm25", "embeddings", "hybrid"] if self.vectors else ["bm25"]

    def encoder_for(self, query: str) -> str | None:
        """The backend for `query`: e5 for Chinese; MiniLM, else e5, for anything else; None: BM25."""
        if is_chinese(query):
            return "e5" if "e5" in self.vectors else None
        return next((name for name in ("minilm", "e5") if name in self.vectors), None)

    def prepare(self, queries: Sequence[str]) -> None:
        """Embed many queries in one batch per backend (the encoders cache them: one model load)."""
        by_encoder: dict[str, list[str]] = defaultdict(list)
        for query in queries:
            if (name := self.encoder_for(query)) is not None:
                by_encoder[name].append(query)
        for name, texts in by_encoder.items():
            _encode(name, texts)

    def search(self, query: str, k: int = 5, mode: str = "auto") -> list[Hit]:
        """The k best entries for `query`; `mode` falls back to BM25 where embeddings don't apply."""
        lexical = self.bm25.scores(query)
        name = self.encoder_for(query) if mode != "bm25" else None
        if name is None:
            order, scores, method = np.argsort(-lexical, kind="stable"), lexical, "bm25"
            order = order[scores[order] > 0]  # no shared term: no evidence at all
        else:
            dense = self.vectors[name] @ _encode(name, [query])[0]  # (N,) cosine: both L2-normalised
            if mode in ("embeddings", "auto"):
                order, scores, method = np.argsort(-dense, kind="stable"), dense, name
            else:
                scores = np.zeros(len(self.entries))
                for ranking in (np.argsort(-lexical, kind="stable"), np.argsort(-dense, kind="stable")):
                    scores[ranking] += 1.0 / (RRF_K + np.arange(1, len(ranking) + 1))
                order, method = np.argsort(-scores, kind="stable"), f"bm25+{name}"
        return [
            Hit(self.entries[int(i)], round(float(scores[i]), 4), rank, method)
            for rank, i in enumerate(order[:k], start=1)
        ]


def _encode(encoder: str, texts: list[str]) -> np.ndarray:
    """(N, 384) L2-normalised vectors; transformers' per-load progress bar is silenced (MiniLM is
    loaded once per batch, and a bar per query would bury the output)."""
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass
    return text_encoder(encoder).encode(texts).numpy()


def hit_at_k(
    index: SupportIndex, queries: Sequence[tuple[str, str]], ks: Sequence[int] = (1, 5), mode: str = "auto"
) -> dict[str, float]:
    """Share of (query, gold entry id) pairs whose gold entry is in the top k, for each k."""
    if not queries:
        return {f"hit@{k}": 0.0 for k in ks}
    if mode != "bm25":
        index.prepare([query for query, _ in queries])
    depth = max(ks)
    ranked = [[hit.entry.id for hit in index.search(query, depth, mode)] for query, _ in queries]
    return {
        f"hit@{k}": sum(gold in ids[:k] for ids, (_, gold) in zip(ranked, queries, strict=True))
        / len(queries)
        for k in ks
    }
