"""Near-duplicate text dedup: MinHash signatures of character shingles, banded LSH, a kept-docs index.

Why MinHash (Broder 1997): for two shingle sets A, B and a random hash h,
P[min h(A) = min h(B)] = J(A, B) = |A ∩ B| / |A ∪ B|, so the share of equal entries
of two K-entry signatures estimates J with standard error sqrt(J(1 − J)/K).

Why LSH banding: the signature is cut into b bands of r rows; two documents become
candidates when any band is equal, which happens with probability

    P(candidate | J = s) = 1 − (1 − s^r)^b,

an S-curve that is steep around the threshold. (b, r) are chosen like datasketch
does, minimising w_fp·(false-positive area below the threshold) + w_fn·(false-negative
area above it), but with w_fn = 0.9 instead of datasketch's 0.5: every candidate is
verified with the estimated Jaccard, so a false candidate costs one K-value comparison
while a missed one is a duplicate left in the data. At 0.8 / 128 that gives
(b, r) = (14, 9) instead of (9, 13): P(candidate) at J = 0.85 is 0.975 instead of 0.69,
at J = 0.5 it is 0.027 instead of 0.001. A drop always names a kept record whose
estimated Jaccard reaches the threshold.

Shingles are character n-grams (default 5) of the lower-cased text with whitespace
runs collapsed, so they work for Chinese (no word splitting) and English alike. A
text shorter than n is padded with NULs to one shingle.

Vectorised hashing, per batch (no Python loop over shingles):
  1. all texts are concatenated into one code-point array (UTF-32);
  2. every n-gram gets a 64-bit polynomial hash h = Σ c_k·B^(n−1−k) mod 2^64, computed
     as n shifted array passes, then the splitmix64 finaliser to mix its bits; n-grams
     straddling two texts are masked out; the top 32 bits are the shingle hash x;
  3. the K "permutations" are multiply-add-shift hashes (Dietzfelbinger 1996),
     h_i(x) = ((a_i·x + b_i) mod 2^64) >> 32, a strongly universal family that needs
     no modulo (the (a·x + b) mod p of the textbook, with p = 2^64 and the high bits
     kept); one (K, shingles) array op, then `np.minimum.reduceat` per text. The shift
     is monotone, so it is applied after the min, to K values per text, not to all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from genloop.config import TextCleanConfig
from genloop.data.pipeline import Reason, StepOutput
from genloop.data.record import Record

_BASE = np.uint64(0x100000001B3)  # FNV-64 prime: an odd multiplier for the polynomial hash
_CHUNK_SHINGLES = 1 << 15  # (K, chunk) uint64 working array: 32 MB at K = 128
FALSE_NEGATIVE_WEIGHT = 0.9


@lru_cache
def lsh_bands(
    threshold: float, num_perm: int, *, false_negative_weight: float = FALSE_NEGATIVE_WEIGHT
) -> tuple[int, int]:
    """(bands, rows), bands·rows ≤ num_perm, minimising weighted FP area below + FN area above threshold."""
    below, above = np.linspace(0.0, threshold, 200), np.linspace(threshold, 1.0, 200)

    def weighted_error(bands: int, rows: int) -> float:
        false_positive = np.trapezoid(1 - (1 - below**rows) ** bands, below)  # P(candidate), J < t
        false_negative = np.trapezoid((1 - above**rows) ** bands, above)  # P(missed), J ≥ t
        return float((1 - false_negative_weight) * false_positive + false_negative_weight * false_negative)

    pairs = ((b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1))
    return min(pairs, key=lambda pair: weighted_error(*pair))


def shingle_text(text: str, shingle_size: int) -> str:
    """The text shingles are cut from: lower case, whitespace runs as one space, NUL-padded to n."""
    text = " ".join(text.lower().split())
    return text.ljust(shingle_size, "\0")


def shingles(text: str, shingle_size: int) -> set[str]:
    """The shingle set of one text (reference for tests and for other MinHash implementations)."""
    text = shingle_text(text, shingle_size)
    return {text[i : i + shingle_size] for i in range(len(text) - shingle_size + 1)}


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place: every input bit affects every output bit."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def shingle_hashes(texts: list[str], shingle_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(32-bit hashes of every shingle of every text as uint64, count of shingles per text)."""
    padded = [shingle_text(t, shingle_size) for t in texts]
    lengths = np.fromiter((len(t) for t in padded), dtype=np.int64, count=len(padded))
    codes = np.frombuffer("".join(padded).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    positions = len(codes) - shingle_size + 1
    hashes = np.zeros(positions, dtype=np.uint64)
    for k in range(shingle_size):  # h = Σ c_k·B^(n−1−k), Horner's rule over shifted views
        hashes *= _BASE
        hashes += codes[k : k + positions]
    _mix64(hashes)
    counts = lengths - shingle_size + 1
    starts = np.cumsum(lengths) - lengths
    # An n-gram starting at position p of text t is whole when p − start_t < count_t.
    owner = np.repeat(np.arange(len(padded)), lengths)[:positions]
    whole = (np.arange(positions) - starts[owner]) < counts[owner]
    return hashes[whole] >> np.uint64(32), counts


@dataclass(frozen=True)
class MinHasher:
    """K multiply-add-shift hashes drawn from `seed`; `signatures` maps texts to (N, K) uint32."""

    num_perm: int = 128
    shingle_size: int = 5
    seed: int = 1
    _a: np.ndarray = field(init=False, repr=False, compare=False)  # (K, 1) uint64
    _b: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        coefficients = rng.integers(0, 2**64, size=(2, self.num_perm, 1), dtype=np.uint64)
        object.__setattr__(self, "_a", coefficients[0])
        object.__setattr__(self, "_b", coefficients[1])

    def signatures(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        if not texts:
            return out
        hashes, counts = shingle_hashes(texts, self.shingle_size)
        ends = np.cumsum(counts)
        first = 0
        while first < len(texts):  # chunks of whole texts, about _CHUNK_SHINGLES shingles each
            begin = ends[first] - counts[first]
            last = max(first + 1, int(np.searchsorted(ends, begin + _CHUNK_SHINGLES, side="right")))
            block = hashes[begin : ends[last - 1]]  # (S,)
            permuted = self._a * block  # (K, S), mod 2^64 by wrap-around
            permuted += self._b
            offsets = (ends[first:last] - counts[first:last]) - begin
            minima = np.minimum.reduceat(permuted, offsets, axis=1)  # (K, texts in chunk)
            out[first:last] = (minima >> np.uint64(32)).T
            first = last
        return out


PENDING_LIMIT = 32_768
"""Texts added since the last merge that may sit in the small pending dict (see `MinHashLSHIndex`)."""


class MinHashLSHIndex:
    """Signatures of kept texts, banded into hash tables, with each text's id and location.

    `find` returns the most similar indexed text at or above the threshold; `add` indexes a
    text. `NearDuplicates.save`/`load` persist signatures, ids and locations as `.npz` (the
    buckets are rebuilt on load), so a later collection can be deduplicated against this one.

    Columnar buckets. A band key is salted with its band number before the final mix, so
    the b tables share one key space (a cross-band collision has probability ~2^-64 and
    would only add a candidate that verification rejects). Merged texts live in one
    sorted uint64 array of keys with a parallel int32 array of text positions, N·b
    entries, 12 bytes each (a dict-of-lists bucket costs ~150 bytes per entry); a bucket
    is the run of equal keys, found with `searchsorted`. Texts added one by one go first to
    a small dict (at most `PENDING_LIMIT` texts); `compact` merges them into the arrays
    with one sort of the new keys and one `insert`, O(N) memory traffic per merge. A
    whole batch is looked up in the arrays at once (`batch_candidates`: one `searchsorted`
    of its b·n sorted keys); only the pending dict is looked up per text.
    """

    def __init__(self, *, threshold: float = 0.8, num_perm: int = 128) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.bands, self.rows = lsh_bands(threshold, num_perm)
        rng = np.random.default_rng(0)
        self._band_mix = rng.integers(1, 2**64, size=self.rows, dtype=np.uint64) | np.uint64(1)
        self._band_salt = rng.integers(0, 2**64, size=self.bands, dtype=np.uint64)
        self._keys = np.empty(0, dtype=np.uint64)  # sorted keys of every merged text and band
        self._positions = np.empty(0, dtype=np.int32)  # the text each key belongs to
        self._pending: dict[int, int | list[int]] = {}  # key → position(s) of pending texts
        self._pending_first = 0  # texts [_pending_first, len) are in `_pending`, not yet merged
        # (capacity, K) uint32, grown by doubling: one array instead of a NumPy object per text,
        # and candidates are verified with one vectorised comparison.
        self._signatures = np.empty((1024, num_perm), dtype=np.uint32)
        self.ids: list[str] = []
        self.wheres: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(N, bands) uint64: each band's r values folded into one key, salted by the band number."""
        used = signatures[:, : self.bands * self.rows].astype(np.uint64)
        banded = used.reshape(len(signatures), self.bands, self.rows)
        folded = (banded * self._band_mix).sum(axis=2, dtype=np.uint64)
        folded += self._band_salt
        return _mix64(folded)

    def batch_candidates(self, keys: np.ndarray) -> list[np.ndarray]:
        """For each row of `keys` (N, bands): sorted positions of merged texts sharing a band."""
        n = len(keys)
        empty = [np.empty(0, dtype=np.int64)] * n
        if not len(self._keys) or not n:
            return empty
        flat = keys.ravel()
        order = np.argsort(flat)  # sorted queries: each binary search starts where the last ended
        wanted, query = flat[order], order // self.bands
        low = np.searchsorted(self._keys, wanted, side="left")
        hit = self._keys[np.minimum(low, len(self._keys) - 1)] == wanted
        if not hit.any():
            return empty
        wanted, query, low = wanted[hit], query[hit], low[hit]
        counts = np.searchsorted(self._keys, wanted, side="right") - low
        total = int(counts.sum())
        # Positions low_i, low_i + 1, ..., high_i − 1 for every hit i, without a loop.
        starts = np.repeat(low - (np.cumsum(counts) - counts), counts)
        query = np.repeat(query, counts)
        candidate = self._positions[starts + np.arange(total)].astype(np.int64)
        order = np.lexsort((candidate, query))
        query, candidate = query[order], candidate[order]
        first = np.ones(len(query), dtype=bool)
        first[1:] = (query[1:] != query[:-1]) | (candidate[1:] != candidate[:-1])
        query, candidate = query[first], candidate[first]
        bounds = np.searchsorted(query, np.arange(n + 1))
        return [candidate[bounds[i] : bounds[i + 1]] for i in range(n)]

    def _pending_candidates(self, keys: list[int]) -> list[int]:
        hits = [hit for hit in map(self._pending.get, keys) if hit is not None]
        if not hits:
            return []
        found = {i for hit in hits for i in ((hit,) if isinstance(hit, int) else hit)}
        return sorted(found)

    def candidates(self, keys: list[int]) -> set[int]:
        """Indexed texts sharing at least one band with `keys` (unverified)."""
        merged = self.batch_candidates(np.array([keys], dtype=np.uint64))[0]
        return {*merged.tolist(), *self._pending_candidates(keys)}

    def find(
        self, signature: np.ndarray, keys: list[int], merged: np.ndarray | None = None
    ) -> tuple[int, float] | None:
        """(index of the most similar kept text, estimated Jaccard) if any reaches the threshold.

        `merged`: this text's row of `batch_candidates` when the caller looked up a whole batch
        (the index must not have been compacted since).
        """
        if merged is None:
            merged = self.batch_candidates(np.array([keys], dtype=np.uint64))[0]
        pending = self._pending_candidates(keys)
        # Sorted (pending texts come after merged ones), so among equally similar texts the
        # earliest kept one is named (deterministic).
        candidates = np.concatenate([merged, np.array(pending, dtype=np.int64)]) if pending else merged
        if not len(candidates):
            return None
        agreeing = np.count_nonzero(self._signatures[candidates] == signature, axis=1)  # (C,)
        best = int(np.argmax(agreeing))
        similarity = float(agreeing[best]) / self.num_perm
        return (int(candidates[best]), similarity) if similarity >= self.threshold else None

    def _store(self, signatures: np.ndarray, ids: list[str], wheres: list[str]) -> int:
        """Append signatures, ids and locations; returns the position of the first."""
        first, needed = len(self.ids), len(self.ids) + len(signatures)
        if needed > len(self._signatures):
            grown = np.empty((max(needed, 2 * len(self._signatures)), self.num_perm), dtype=np.uint32)
            grown[:first] = self._signatures[:first]
            self._signatures = grown
        self._signatures[first:needed] = signatures
        self.ids.extend(ids)
        self.wheres.extend(wheres)
        return first

    def add(self, signature: np.ndarray, keys: list[int], record_id: str, where: str) -> None:
        index = self._store(signature[None, :], [record_id], [where])
        pending = self._pending
        for key in keys:
            # A bare int for a key seen once (nearly all): no list to allocate and for the GC to track.
            known = pending.get(key)
            if known is None:
                pending[key] = index
            elif isinstance(known, int):
                pending[key] = [known, index]
            else:
                known.append(index)

    def compact(self, *, force: bool = False) -> None:
        """Merge the pending texts into the sorted arrays once there are `PENDING_LIMIT` (or `force`)."""
        count = len(self) - self._pending_first
        if count == 0 or (count < PENDING_LIMIT and not force):
            return
        keys = self.band_keys(self._signatures[self._pending_first : len(self)])
        self._merge(keys, np.arange(self._pending_first, len(self), dtype=np.int32))
        self._pending = {}
        self._pending_first = len(self)

    def _merge(self, keys: np.ndarray, positions: np.ndarray) -> None:
        """Insert the (N, bands) `keys` of the texts at `positions` into the sorted arrays."""
        flat = keys.ravel()
        order = np.argsort(flat, kind="stable")
        at = np.searchsorted(self._keys, flat[order], side="right")  # after equal, older keys
        self._keys = np.insert(self._keys, at, flat[order])
        self._positions = np.insert(self._positions, at, np.repeat(positions, self.bands)[order])

    def signature_matrix(self) -> np.ndarray:
        """(N, K) uint32 signatures of the indexed texts, in insertion order."""
        return self._signatures[: len(self.ids)].copy()

    def extend(self, signatures: np.ndarray, ids: list[str], wheres: list[str]) -> None:
        """Index many texts at once (loading a saved index): no duplicate checks among them."""
        self.compact(force=True)
        first = self._store(signatures, ids, wheres)
        self._merge(self.band_keys(signatures), np.arange(first, len(self), dtype=np.int32))
        self._pending_first = len(self)


class NearDuplicates:
    """Drop texts whose estimated Jaccard with an earlier kept text is ≥ threshold.

    State (the index of kept texts) lives across batches, so duplicates in different
    shards are found; the first occurrence wins, as in exact dedup. Stateful, so it runs in
    the driver over batches in input order (the hashing is vectorised: ~16k docs/s/core).
    """

    name = "near-dedup"
    parallel_safe = False

    def __init__(
        self, *, threshold: float = 0.8, shingle_size: int = 5, num_perm: int = 128, seed: int = 1
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-dup threshold must be in (0, 1], got {threshold}")
        self.hasher = MinHasher(num_perm=num_perm, shingle_size=shingle_size, seed=seed)
        self.index = MinHashLSHIndex(threshold=threshold, num_perm=num_perm)

    def save(self, path: Path) -> None:
        """Persist kept texts (signatures, ids, locations) and the settings that made them, as `.npz`."""
        hasher = self.hasher
        np.savez(
            path,
            signatures=self.index.signature_matrix(),
            ids=np.array(self.index.ids, dtype=str),
            wheres=np.array(self.index.wheres, dtype=str),
            settings=np.array([self.index.threshold, hasher.shingle_size, hasher.num_perm, hasher.seed]),
        )

    @classmethod
    def load(cls, path: Path) -> NearDuplicates:
        """A step that already knows every text saved at `path` (a later collection dedups against it)."""
        try:
            with np.load(path) as saved:
                threshold, shingle_size, num_perm, seed = saved["settings"].tolist()
                step = cls(
                    threshold=threshold,
                    shingle_size=int(shingle_size),
                    num_perm=int(num_perm),
                    seed=int(seed),
                )
                step.index.extend(saved["signatures"], saved["ids"].tolist(), saved["wheres"].tolist())
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(
                f"{path}: not a near-dup index written by NearDuplicates.save ({exc}); "
                "delete it to start afresh"
            ) from None
        return step

    def __call__(self, batch: list[Record]) -> StepOutput:
        texts = [r for r in batch if r.modality == "text"]
        signatures = self.hasher.signatures([r.payload.decode("utf-8") for r in texts])
        self.index.compact()  # between batches only: `merged` below must stay valid for the batch
        band_keys = self.index.band_keys(signatures)
        merged = self.index.batch_candidates(band_keys)
        verdicts: dict[int, str] = {}
        for record, signature, key, known in zip(texts, signatures, band_keys.tolist(), merged, strict=True):
            match = self.index.find(signature, key, known)
            if match is None:
                self.index.add(signature, key, record.id, record.where)
                continue
            i, similarity = match
            verdicts[id(record)] = Reason(
                f"near duplicate (Jaccard≈{similarity:.2f}) of {self.index.ids[i][:12]} "
                f"({self.index.wheres[i]})",
                kind="near duplicate",
            )
        output = StepOutput(kept=[])
        for record in batch:
            reason = verdicts.get(id(record))
            if reason is None:
                output.kept.append(record)
            else:
                output.dropped.append((record, reason))
        return output


def near_duplicates(cfg: TextCleanConfig) -> NearDuplicates:
    """The near-dup step configured by `[clean.text]`."""
    return NearDuplicates(
        threshold=cfg.near_dup_threshold, shingle_size=cfg.shingle_size, num_perm=cfg.num_perm, seed=cfg.seed
    )
