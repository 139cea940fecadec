"""Inter-annotator agreement: Cohen's kappa (two annotators) and Fleiss' kappa (n raters per item).

Both compare the observed agreement p_o with the agreement p_e expected by chance::

    κ = (p_o − p_e) / (1 − p_e)

κ = 1 is perfect agreement, 0 is chance level, < 0 worse than chance. Landis & Koch
(1977) read 0.41–0.60 as moderate and 0.61–0.80 as substantial agreement.

**Cohen (1960)**, two annotators A and B label the same N items into categories k:
p_o = share of items with equal labels, p_e = Σ_k p_A(k) · p_B(k), where p_X(k) is
the share of items X put in k.

**Fleiss (1971)**, N items each rated by the same number n of raters (not
necessarily the same people); n_ij = raters who put item i in category j::

    P_i = (Σ_j n_ij² − n) / (n (n − 1))      p_o = P̄ = mean_i P_i
    p_j = Σ_i n_ij / (N n)                   p_e = Σ_j p_j²

When p_e = 1 (everyone always used one and the same category) κ is 0/0; it is
reported as 1.0 when the labels agree perfectly, which is what a reader expects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def _kappa(observed: float, expected: float) -> float:
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def cohen_kappa(labels_a: Sequence[str], labels_b: Sequence[str]) -> float:
    """Cohen's κ of two annotators' labels for the same items, in the same order."""
    if len(labels_a) != len(labels_b):
        raise ValueError(
            f"Cohen's kappa needs both annotators' labels for the same items "
            f"(got {len(labels_a)} and {len(labels_b)} labels)"
        )
    if not labels_a:
        raise ValueError("Cohen's kappa needs at least one item labelled by both annotators")
    n = len(labels_a)
    observed = sum(a == b for a, b in zip(labels_a, labels_b, strict=True)) / n
    count_a, count_b = Counter(labels_a), Counter(labels_b)
    expected = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    return _kappa(observed, expected)


def fleiss_kappa_counts(counts: np.ndarray | Sequence[Sequence[int]]) -> float:
    """Fleiss' κ from an (N items, k categories) matrix of rater counts, every row summing to n ≥ 2."""
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] == 0:
        raise ValueError("Fleiss' kappa needs an (items × categories) table with at least one item")
    raters = table.sum(axis=1)
    n = raters[0]
    if not np.all(raters == n):
        uneven = int(np.flatnonzero(raters != n)[0])
        raise ValueError(
            f"Fleiss' kappa needs the same number of ratings per item: item 0 has {int(n)}, "
            f"item {uneven} has {int(raters[uneven])}"
        )
    if n < 2:
        raise ValueError(f"Fleiss' kappa needs at least 2 ratings per item (got {int(n)})")
    per_item = ((table**2).sum(axis=1) - n) / (n * (n - 1))  # P_i
    category_share = table.sum(axis=0) / (table.shape[0] * n)  # p_j
    return _kappa(float(per_item.mean()), float((category_share**2).sum()))


def fleiss_kappa(ratings: Sequence[Sequence[str]]) -> float:
    """Fleiss' κ from each item's list of labels (one per rater; every item rated equally often)."""
    categories = sorted({label for item in ratings for label in item})
    index = {label: j for j, label in enumerate(categories)}
    counts = np.zeros((len(ratings), max(len(categories), 1)), dtype=np.int64)
    for i, item in enumerate(ratings):
        for label in item:
            counts[i, index[label]] += 1
    return fleiss_kappa_counts(counts)


def interpretation(kappa: float) -> str:
    """Landis & Koch's (1977) words for a κ value."""
    bands = [(0.0, "poor"), (0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")]
    for upper, word in bands:
        if kappa <= upper:
            return word
    return "almost perfect"
