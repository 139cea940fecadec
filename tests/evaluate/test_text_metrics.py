"""Text metrics: tokenizer, loss conversions, distinct-n, self-BLEU, repetition — known answers."""

from __future__ import annotations

import math

import pytest

from genloop.errors import GenloopError
from genloop.evaluate.text_metrics import (
    bits_per_character,
    bits_per_token,
    bleu,
    distinct_n,
    perplexity,
    repetition_rate,
    self_bleu,
    text_metrics,
    tokenize,
)
from support.text import fortune_texts


def test_tokenize_splits_cjk_by_character_and_latin_by_word() -> None:
    assert tokenize("The cat 坐在垫子上。") == ["The", "cat", "坐", "在", "垫", "子", "上", "。"]
    assert tokenize("AI模型, ok!") == ["AI", "模", "型", ",", "ok", "!"]
    assert tokenize("  ") == []


def test_loss_conversions() -> None:
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(50)) == pytest.approx(50)
    assert bits_per_token(math.log(2)) == pytest.approx(1.0)
    # 100 BPE tokens at ln 4 nats each carry 200 bits over 400 characters: 0.5 bit per char.
    assert bits_per_character(math.log(4), tokens=100, characters=400) == pytest.approx(0.5)
    with pytest.raises(GenloopError, match="positive counts"):
        bits_per_character(1.0, tokens=0, characters=10)


def test_distinct_n_known_values() -> None:
    scores = distinct_n(["a b a b", "a b c"])
    # unigrams a b a b a b c: 3 unique of 7; bigrams ab ba ab ab bc: 3 of 5
    assert scores[1] == pytest.approx(3 / 7)
    assert scores[2] == pytest.approx(3 / 5)
    assert scores[4] == pytest.approx(1.0)  # the only 4-gram
    assert distinct_n(["一二三", "一二三"])[3] == pytest.approx(0.5)


def test_repetition_rate() -> None:
    assert repetition_rate(["a b a b a b"], n=2) == pytest.approx(1 - 2 / 5)
    assert repetition_rate(["a b c d e f"], n=2) == 0.0
    assert repetition_rate(["哈哈哈哈哈"], n=1) == pytest.approx(0.8)
    assert repetition_rate(["short"], n=4) == 0.0


def test_bleu_identical_disjoint_and_hand_computed() -> None:
    hyp = ["the", "cat", "sat", "on", "the", "mat"]
    assert bleu(hyp, [hyp]) == pytest.approx(1.0)
    assert bleu(hyp, [["x", "y", "z", "w", "v", "u"]]) == 0.0
    # ref "the cat sat on a mat": p1 = 5/6; matches 3 of 5 bigrams → (3+1)/(5+1), 2 of 4
    # trigrams → 3/5, 1 of 3 4-grams → 2/4; equal lengths so BP = 1.
    expected = math.exp((math.log(5 / 6) + math.log(4 / 6) + math.log(3 / 5) + math.log(2 / 4)) / 4)
    assert bleu(hyp, [["the", "cat", "sat", "on", "a", "mat"]]) == pytest.approx(expected)
    # brevity: a 3-token hypothesis against a 6-token reference
    short = bleu(["the", "cat", "sat"], [hyp])
    assert short == pytest.approx(math.exp(1 - 6 / 3) * math.exp((0 + math.log(3 / 3) + math.log(2 / 2)) / 4))


def test_self_bleu_matches_the_direct_computation_on_real_text() -> None:
    samples = fortune_texts(3000)[:12]
    tokens = [tokenize(s) for s in samples]
    direct = sum(bleu(t, tokens[:i] + tokens[i + 1 :]) for i, t in enumerate(tokens)) / len(tokens)
    assert self_bleu(samples) == pytest.approx(direct)


def test_self_bleu_separates_collapsed_from_diverse_samples() -> None:
    diverse = fortune_texts(3000)[:10]
    collapsed = [diverse[0]] * 5 + diverse[1:5]
    assert self_bleu(collapsed) > self_bleu(diverse) + 0.3
    assert self_bleu([diverse[0]] * 3) == pytest.approx(1.0)


def test_self_bleu_subsamples_with_a_seed() -> None:
    samples = fortune_texts(6000)
    assert len(samples) > 20
    a = self_bleu(samples, max_samples=8, seed=1)
    assert a == self_bleu(samples, max_samples=8, seed=1)
    assert a != self_bleu(samples, max_samples=8, seed=2)
    with pytest.raises(GenloopError, match="at least 2 samples"):
        self_bleu(["one"])


def test_text_metrics_on_chinese() -> None:
    poems = fortune_texts(2000, name="tang300")
    metrics = text_metrics(poems)
    assert set(metrics) == {
        "distinct_1",
        "distinct_2",
        "distinct_3",
        "distinct_4",
        "self_bleu",
        "repetition_4",
    }
    assert 0 < metrics["distinct_1"] < metrics["distinct_4"] <= 1
    assert 0 <= metrics["self_bleu"] < 0.5
