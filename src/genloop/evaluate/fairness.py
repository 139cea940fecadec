"""Fairness (公平性): quality and representation per class or group, not only on average.

per_class_summary({"shirt": 0.71, "sneaker": 0.97, ...}, higher_is_better=True)
    → ClassSummary(worst_class="shirt", worst=0.71, mean=…, best=…, gap=…)
representation(predicted_labels_of_unconditional_samples, data_labels)
    → Representation(sample_share, data_share, total_variation, ratio)
gender_balance(texts, ["doctor", "nurse", "医生", "护士"])
    → GenderBalance(per_word {word: WordBalance(male, female, …)}, skew)

All pure functions of their inputs, so the same numbers can be reported and used as a gate.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from genloop.errors import GenloopError
from genloop.evaluate.text_metrics import tokenize

# ---- quality per class ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClassSummary:
    worst_class: str
    worst: float
    best_class: str
    best: float
    mean: float  # unweighted: every class counts the same
    gap: float  # |best − worst|, in the metric's own units

    def as_metrics(self, name: str) -> dict[str, float]:
        return {f"{name}_worst": self.worst, f"{name}_mean": self.mean, f"{name}_gap": self.gap}


def per_class_summary(per_class: Mapping[str, float], *, higher_is_better: bool) -> ClassSummary:
    """Worst and best class, unweighted mean and gap of one metric measured per class.

    `higher_is_better`: True for accuracy, False for a distance such as FD (the worst class is
    then the one with the largest value).
    """
    values = {label: float(value) for label, value in per_class.items() if not math.isnan(float(value))}
    if not values:
        raise GenloopError(
            "no per-class values to summarise (empty, or every value is NaN)",
            hint="measure the metric on each class's samples first",
        )
    ranked = sorted(values, key=values.__getitem__, reverse=higher_is_better)  # best first
    best_class, worst_class = ranked[0], ranked[-1]
    return ClassSummary(
        worst_class=worst_class,
        worst=values[worst_class],
        best_class=best_class,
        best=values[best_class],
        mean=sum(values.values()) / len(values),
        gap=abs(values[best_class] - values[worst_class]),
    )


# ---- representation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Representation:
    sample_share: dict[str, float]  # share of unconditional samples the classifier puts in each class
    data_share: dict[str, float]
    total_variation: float  # ½ Σ_c |sample − data| ∈ [0, 1]
    ratio: dict[str, float]  # sample share / data share (inf for a class absent from the data)

    @property
    def most_under_represented(self) -> str:
        return min(self.ratio, key=self.ratio.__getitem__)


def _shares(labels: Iterable[str] | Mapping[str, float], what: str) -> dict[str, float]:
    counts = dict(labels) if isinstance(labels, Mapping) else dict(Counter(labels))
    total = float(sum(counts.values()))
    if total <= 0:
        raise GenloopError(
            f"no {what} to count classes in", hint=f"pass the class label of every {what[:-1]}"
        )
    return {label: count / total for label, count in counts.items()}


def representation(
    sample_labels: Iterable[str] | Mapping[str, float],
    data_labels: Iterable[str] | Mapping[str, float],
    *,
    classes: Sequence[str] | None = None,
) -> Representation:
    """How often each class appears in unconditional samples vs in the data.

    Both sides are label lists (one per sample / record) or {label: count}. `classes` adds
    classes that may appear on neither side (share 0), so a class the model never draws
    still shows up with ratio 0.
    """
    sample = _shares(sample_labels, "samples")
    data = _shares(data_labels, "records")
    labels = list(dict.fromkeys([*(classes or ()), *data, *sample]))
    sample = {c: sample.get(c, 0.0) for c in labels}
    data = {c: data.get(c, 0.0) for c in labels}
    ratio = {c: sample[c] / data[c] if data[c] > 0 else (math.inf if sample[c] > 0 else 1.0) for c in labels}
    total_variation = 0.5 * sum(abs(sample[c] - data[c]) for c in labels)
    return Representation(sample, data, total_variation, ratio)


# ---- text balance probe --------------------------------------------------------------------

GENDERED_TERMS: dict[str, dict[str, tuple[str, ...]]] = {
    "male": {
        "en": ("he", "him", "his", "himself", "man", "men", "boy", "boys", "male", "father", "son",
               "brother", "husband", "mr", "king", "gentleman", "sir"),
        "zh": ("他", "男", "父亲", "爸爸", "儿子", "哥哥", "弟弟", "丈夫", "先生", "男人"),
    },
    "female": {
        "en": ("she", "her", "hers", "herself", "woman", "women", "girl", "girls", "female", "mother",
               "daughter", "sister", "wife", "mrs", "ms", "queen", "lady", "madam"),
        "zh": ("她", "女", "母亲", "妈妈", "女儿", "姐姐", "妹妹", "妻子", "女士", "女人"),
    },
}  # fmt: skip
_SENTENCE_END = re.compile(r"[.!?;\n。！？；]+")


@dataclass(frozen=True)
class WordBalance:
    male: int  # sentences where the word co-occurs with a male term
    female: int

    @property
    def male_share(self) -> float | None:
        total = self.male + self.female
        return self.male / total if total else None

    @property
    def log_ratio(self) -> float:
        """log2((male + ½) / (female + ½)): 0 balanced, +1 ≈ twice as often male."""
        return math.log2((self.male + 0.5) / (self.female + 0.5))


@dataclass(frozen=True)
class GenderBalance:
    per_word: dict[str, WordBalance]
    skew: float  # mean over words seen with any gendered term of |male − female| / (male + female)


def _term_sequences(gender: str) -> list[list[str]]:
    return [
        [t.lower() for t in tokenize(term)] for terms in GENDERED_TERMS[gender].values() for term in terms
    ]


def _contains(tokens: Sequence[str], sequence: Sequence[str]) -> bool:
    n = len(sequence)
    return any(list(tokens[i : i + n]) == list(sequence) for i in range(len(tokens) - n + 1))


def gender_balance(texts: Iterable[str], words: Sequence[str]) -> GenderBalance:
    """Counts, per word (occupation, product…), the sentences that also hold a male or a female term.

    Sentences split on . ! ? ; and newlines (and 。！？；); matching is on `tokenize` tokens,
    case-insensitive, so "he" does not match inside "the" and 医生 matches as two characters.
    A sentence with both genders counts for both. Single-character Chinese terms (他, 女) also
    match inside words (其他 "other"): a probe, not a parser. skew 0 = every word appears as often with
    either gender; 1 = every word appears with one gender only.
    """
    if not words:
        raise GenloopError("the balance probe needs words to probe", hint="pass occupation or product words")
    male_terms, female_terms = _term_sequences("male"), _term_sequences("female")
    probes = {word: [t.lower() for t in tokenize(word)] for word in words}
    counts = {word: [0, 0] for word in words}
    for text in texts:
        for sentence in _SENTENCE_END.split(text):
            tokens = [t.lower() for t in tokenize(sentence)]
            if not tokens:
                continue
            present = [word for word, seq in probes.items() if _contains(tokens, seq)]
            if not present:
                continue
            male = any(_contains(tokens, seq) for seq in male_terms)
            female = any(_contains(tokens, seq) for seq in female_terms)
            for word in present:
                counts[word][0] += male
                counts[word][1] += female
    per_word = {word: WordBalance(m, f) for word, (m, f) in counts.items()}
    skews = [abs(b.male - b.female) / (b.male + b.female) for b in per_word.values() if b.male + b.female]
    return GenderBalance(per_word, sum(skews) / len(skews) if skews else 0.0)
