"""How support texts become terms: words for English, character bigrams for Chinese.

Chinese has no spaces, and a word segmenter would be one more dependency whose mistakes
retrieval inherits; overlapping character bigrams (退货 款项 → 退货, 货款, 款项) are the
standard segmenter-free choice for Chinese BM25 and match most two-character words exactly.
A lone Han character between non-Han text is kept as a unigram so 用 / 钱 still count.

    terms("How do I reset my password?")  → ["how", "do", "i", "reset", "my", "password"]
    terms("我想退货")                      → ["我想", "想退", "退货"]
"""

from __future__ import annotations

import itertools
import re
import zlib

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUNS = re.compile(f"[{HAN}]+|[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_HAN_RUN = re.compile(f"[{HAN}]+")
_STOPWORD_TEXT = (
    "a an the is are was were be been am do does did of to in on at for and or but i you it "
    "my your me we our this that what how can could would should will with about"
)
ENGLISH_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
"""Words so common that they only add noise to the intent features (BM25's IDF handles them itself)."""


def terms(text: str) -> list[str]:
    """BM25 terms: lower-cased words and Chinese character bigrams, in order."""
    found: list[str] = []
    for run in _RUNS.findall(text):
        if _HAN_RUN.fullmatch(run):
            found += [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]
        else:
            found.append(run.lower())
    return found


def features(text: str) -> list[str]:
    """Intent features: content words, word bigrams, and character 2-4-grams of each word / Han run.

    Character n-grams give the classifier a grip on inflections and typos (passwords ~ password)
    and on Chinese, where every n-gram of a Han run counts.
    """
    runs = [run.lower() for run in _RUNS.findall(text)]
    words = [run for run in runs if not _HAN_RUN.fullmatch(run)]
    content = [word for word in words if word not in ENGLISH_STOPWORDS]
    found = [f"w:{word}" for word in content]
    found += [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
    for run in runs:
        padded = f"<{run}>" if run in words else run
        for n in (2, 3, 4):
            found += [f"c{n}:{padded[i : i + n]}" for i in range(len(padded) - n + 1)]
    return found


def bucket(feature: str, buckets: int) -> int:
    """A stable bucket for a feature (crc32: the same in every process, unlike Python's hash)."""
    return zlib.crc32(feature.encode("utf-8")) % buckets
