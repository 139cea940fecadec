"""Verbatim overlap with the training set on real text (Debian fortunes, Chinese fortunes)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from genloop.errors import GenloopError
from genloop.evaluate.text_metrics import tokenize
from genloop.evaluate.verbatim import NgramIndex, verbatim_overlap
from support.text import fortune_texts


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return fortune_texts(60_000, name="literature")  # 262 quotes, up to 631 tokens each


@pytest.fixture(scope="module")
def index(corpus: list[str]) -> NgramIndex:
    return NgramIndex.build(corpus[10:])  # corpus[:10] is held out: never seen in training


def novel_tokens(corpus: list[str], count: int) -> list[str]:
    """Words of the held-out quotes in a shuffled order: real vocabulary, no real phrase."""
    words = tokenize(" ".join(corpus[:10]))
    random.Random(0).shuffle(words)
    assert len(words) >= count
    return words[:count]


def longest_document(corpus: list[str]) -> list[str]:
    return tokenize(max(corpus[10:], key=len))


def test_a_copied_sample_overlaps_over_its_whole_length(corpus: list[str], index: NgramIndex) -> None:
    copied = max(corpus[10:], key=len)
    overlap = index.overlap(copied)
    assert overlap.longest_match == overlap.tokens == len(tokenize(copied))
    assert overlap.ngram_share == 1.0


def test_a_shuffled_sample_has_almost_no_overlap(corpus: list[str], index: NgramIndex) -> None:
    words = tokenize(" ".join(corpus[10:40]))
    random.Random(0).shuffle(words)
    overlap = index.overlap(" ".join(words[:400]))
    assert overlap.longest_match == 0
    assert overlap.ngram_share < 0.01


def test_a_planted_30_token_span_is_found_exactly(corpus: list[str], index: NgramIndex) -> None:
    span = longest_document(corpus)[100:130]
    novel = novel_tokens(corpus, 40)
    sample = " ".join([*novel[:10], "ZZQX", *span, "QXZZ", *novel[10:]])
    overlap = index.overlap(sample)
    assert overlap.longest_match == 30
    assert overlap.ngrams_seen == 30 - 8 + 1


def test_no_match_across_document_boundaries() -> None:
    index = NgramIndex.build(["a b c d", "e f g h"], n=2)
    assert index.overlap("c d e f").longest_match == 2  # "d e" spans two documents
    assert index.overlap("a b c d").longest_match == 4


TANG300 = Path("/usr/share/games/fortunes/tang300")
FALLBACK_POEMS = [  # used only where Debian's fortunes-zh is not installed
    "《静夜思》\n作者：李白\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。",
    "《春晓》\n作者：孟浩然\n春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。",
    "《登鹳雀楼》\n作者：王之涣\n白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。",
    "《相思》\n作者：王维\n红豆生南国，春来发几枝。\n愿君多采撷，此物最相思。",
    "《江雪》\n作者：柳宗元\n千山鸟飞绝，万径人踪灭。\n孤舟蓑笠翁，独钓寒江雪。",
    "《鹿柴》\n作者：王维\n空山不见人，但闻人语响。\n返景入深林，复照青苔上。",
]


def chinese_poems() -> list[str]:
    return fortune_texts(20_000, name="tang300") if TANG300.is_file() else FALLBACK_POEMS


def test_chinese_text_matches_per_character() -> None:
    poems = chinese_poems()
    index = NgramIndex.build(poems[1:], n=8)
    line = "".join(tokenize(poems[5])[:20])
    sample = "我们今天去公园散步吧" + line + "明天再见"
    overlap = index.overlap(sample)
    assert overlap.longest_match == len(tokenize(line)) == 20
    assert overlap.ngrams_seen == 20 - 8 + 1
    assert index.overlap(poems[0]).longest_match < 8 + 4  # the held-out poem shares little


def test_summary_counts_samples_over_the_threshold(corpus: list[str], index: NgramIndex) -> None:
    long_copy = " ".join(longest_document(corpus)[:120])
    samples = [long_copy, " ".join(novel_tokens(corpus, 60)), "completely novel words zzqx qqxz"]
    summary, per_sample = verbatim_overlap(index, samples, threshold=50)
    assert per_sample[0].longest_match == 120
    assert summary.max_longest_match == 120
    assert summary.share_over_threshold == pytest.approx(1 / 3)
    assert summary.mean_longest_match == pytest.approx(sum(o.longest_match for o in per_sample) / 3)
    metrics = summary.as_metrics()
    assert metrics["verbatim_share_ge_50"] == pytest.approx(1 / 3)
    assert "verbatim_8gram_share" in metrics


def test_bad_input_fails_clearly() -> None:
    with pytest.raises(GenloopError, match="fewer than 8 tokens"):
        NgramIndex.build(["too short"])
    with pytest.raises(GenloopError, match="n-gram length"):
        NgramIndex.build(["a b"], n=0)
    with pytest.raises(GenloopError, match="no generated samples"):
        verbatim_overlap(NgramIndex.build(["a b c"], n=2), [])
    short = NgramIndex.build(["a b c"], n=2).overlap("x")
    assert (short.ngrams, short.ngram_share, short.longest_match) == (0, 0.0, 0)


def brute_force_longest(sample: list[str], documents: list[list[str]]) -> int:
    """Longest common token span by dynamic programming over every document (the reference)."""
    best = 0
    for doc in documents:
        previous = [0] * (len(doc) + 1)
        for token in sample:
            current = [0] * (len(doc) + 1)
            for j, other in enumerate(doc, 1):
                if token == other:
                    current[j] = previous[j - 1] + 1
                    best = max(best, current[j])
            previous = current
    return best


def test_longest_match_agrees_with_dynamic_programming(corpus: list[str]) -> None:
    documents = corpus[10:60]
    index = NgramIndex.build(documents, n=4)
    token_docs = [tokenize(d) for d in documents]
    rng = random.Random(3)
    for _ in range(5):
        # pieces of real quotes of random lengths glued together, as a generator might
        sample: list[str] = []
        for _ in range(4):
            doc = rng.choice(token_docs)
            start = rng.randrange(len(doc))
            sample += doc[start : start + rng.randrange(1, 25)]
        expected = brute_force_longest(sample, token_docs)
        assert index.overlap(" ".join(sample)).longest_match == (expected if expected >= 4 else 0)
