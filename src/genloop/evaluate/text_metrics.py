"""Text metrics for generated samples, Chinese and English alike.

tokens = tokenize("The cat 坐在垫子上。")   # ['The', 'cat', '坐', '在', '垫', '子', '上', '。']
perplexity(mean_nll), bits_per_character(mean_nll, tokens=..., characters=...)
distinct_n(samples), self_bleu(samples), repetition_rate(samples)

Everything here works on the tokens of `tokenize`: one token per CJK character (Chinese
has no spaces, and character-level models are what genloop trains on it), one per Latin
word, one per punctuation mark. Metrics are pure functions of their inputs; sampling is
seeded.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from genloop.errors import GenloopError

# CJK ideographs (+ extension A, compatibility), kana and Hangul: one token per character.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
# After spacing out the CJK characters: a run of word characters, or one other non-space.
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Split `text` into tokens: each CJK character, each Latin word (``\\w+``), each punctuation mark.

    Case is kept (verbatim overlap is about exact copies). "AI模型。" → ["AI", "模", "型", "。"].
    """
    return _TOKEN.findall(_CJK_CHAR.sub(r" \g<0> ", text))


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The n-grams of `tokens` in order (none when it has fewer than `n`)."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


# ---- held-out loss conversions -------------------------------------------------------------


def perplexity(mean_nll: float) -> float:
    """exp(mean negative log-likelihood per token, in nats)."""
    return math.exp(mean_nll)


def bits_per_token(mean_nll: float) -> float:
    """Mean NLL in nats → bits: nll / ln 2."""
    return mean_nll / math.log(2)


def bits_per_character(mean_nll: float, *, tokens: int, characters: int) -> float:
    """Bits per character of the held-out text: nll·tokens / (ln 2 · characters).

    Comparable across tokenizers (a BPE model and a char model of the same text), unlike
    perplexity; for a character-level model tokens == characters and this is bits_per_token.
    """
    if tokens <= 0 or characters <= 0:
        raise GenloopError(
            f"bits per character needs positive counts, got tokens={tokens}, characters={characters}",
            hint="pass the token and character counts of the held-out text the loss was measured on",
        )
    return mean_nll * tokens / (math.log(2) * characters)


# ---- diversity ------------------------------------------------------------------------------


def distinct_n(samples: Iterable[str], orders: Sequence[int] = (1, 2, 3, 4)) -> dict[int, float]:
    """Distinct-n (Li et al. 2016): unique n-grams / all n-grams over the whole sample set.

    1.0 = no n-gram is ever repeated; close to 0 = the model says the same thing again and
    again. An order with no n-grams at all scores 0.0.
    """
    token_lists = [tokenize(s) for s in samples]
    scores: dict[int, float] = {}
    for n in orders:
        counts: Counter[tuple[str, ...]] = Counter()
        for tokens in token_lists:
            counts.update(ngrams(tokens, n))
        total = sum(counts.values())
        scores[n] = len(counts) / total if total else 0.0
    return scores


def repetition_rate(samples: Iterable[str], n: int = 4) -> float:
    """Mean over samples of the share of repeated n-grams within the sample: 1 − unique/total.

    (seq-rep-n of Welleck et al. 2019.) "a b a b a b" with n=2 → 1 − 2/5 = 0.6. Samples with
    no n-gram are skipped; 0.0 when none has one.
    """
    rates = []
    for sample in samples:
        grams = ngrams(tokenize(sample), n)
        if grams:
            rates.append(1.0 - len(set(grams)) / len(grams))
    return sum(rates) / len(rates) if rates else 0.0


# ---- self-BLEU -----------------------------------------------------------------------------


def bleu(
    hypothesis: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    max_order: int = 4,
) -> float:
    """Sentence BLEU-4 (Papineni et al. 2002) with add-one smoothing of the n>1 precisions.

    BLEU = BP · exp(Σ_n log p_n / N); p_n = clipped matches / hypothesis n-grams, clipped by
    the largest count in any reference; BP = exp(1 − r/c) when c < r (r: the reference length
    closest to c). Smoothing (Lin & Och 2004): p_n = (m_n + 1)/(t_n + 1) for n > 1, so one
    missing 4-gram does not zero the score.
    """
    max_counts: Counter[tuple[str, ...]] = Counter()
    for reference in references:
        for n in range(1, max_order + 1):
            for gram, count in Counter(ngrams(reference, n)).items():
                max_counts[gram] = max(max_counts[gram], count)
    lengths = [len(r) for r in references]
    return _bleu(hypothesis, max_counts.__getitem__, lengths, max_order)


def _bleu(
    hypothesis: Sequence[str],
    max_count: Callable[[tuple[str, ...]], int],
    reference_lengths: Sequence[int],
    max_order: int,
) -> float:
    c = len(hypothesis)
    if c == 0 or not reference_lengths:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_order + 1):
        counts = Counter(ngrams(hypothesis, n))
        matches = sum(min(count, max_count(gram)) for gram, count in counts.items())
        total = sum(counts.values())
        if n == 1:
            if matches == 0:
                return 0.0
            log_precision += math.log(matches / total)
        else:
            log_precision += math.log((matches + 1) / (total + 1))
    r = min(reference_lengths, key=lambda length: (abs(length - c), length))
    brevity = 1.0 if c >= r else math.exp(1 - r / c)
    return brevity * math.exp(log_precision / max_order)


def self_bleu(samples: Sequence[str], *, max_samples: int = 200, seed: int = 0, max_order: int = 4) -> float:
    """Mean BLEU-4 of each sample against all the others as references (Zhu et al. 2018, Texygen).

    High = the samples look alike (mode collapse). At most `max_samples` samples, drawn with
    `seed`, take part (the cost grows with the square of their count otherwise).

    Instead of rebuilding the reference counts for every hypothesis, each n-gram keeps its two
    largest per-sample counts and their owners: the clip for hypothesis i is the top count
    unless i owns it, then the runner-up. O(total n-grams) instead of O(samples · n-grams).
    """
    if len(samples) < 2:
        raise GenloopError(
            f"self-BLEU needs at least 2 samples, got {len(samples)}",
            hint="generate more samples before evaluating diversity",
        )
    chosen = list(samples)
    if len(chosen) > max_samples:
        chosen = random.Random(seed).sample(chosen, max_samples)
    token_lists = [tokenize(s) for s in chosen]
    top: dict[tuple[str, ...], tuple[int, int, int]] = {}  # gram → (best count, owner, runner-up)
    for owner, tokens in enumerate(token_lists):
        for n in range(1, max_order + 1):
            for gram, count in Counter(ngrams(tokens, n)).items():
                best, best_owner, second = top.get(gram, (0, -1, 0))
                if count > best:
                    top[gram] = (count, owner, best)
                else:
                    top[gram] = (best, best_owner, max(second, count))
    lengths = [len(t) for t in token_lists]
    scores = []
    for i, tokens in enumerate(token_lists):

        def clip(gram: tuple[str, ...], i: int = i) -> int:
            best, owner, second = top.get(gram, (0, -1, 0))
            return second if owner == i else best

        others = lengths[:i] + lengths[i + 1 :]
        scores.append(_bleu(tokens, clip, others, max_order))
    return sum(scores) / len(scores)


def text_metrics(
    samples: Sequence[str], *, max_self_bleu_samples: int = 200, seed: int = 0
) -> Mapping[str, float]:
    """The sample-only text metrics in one flat mapping (distinct_1..4, self_bleu, repetition_4)."""
    metrics: dict[str, float] = {f"distinct_{n}": v for n, v in distinct_n(samples).items()}
    metrics["self_bleu"] = self_bleu(samples, max_samples=max_self_bleu_samples, seed=seed)
    metrics["repetition_4"] = repetition_rate(samples, 4)
    return metrics
