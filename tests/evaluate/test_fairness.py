"""Fairness helpers on hand-made examples whose answers are known."""

from __future__ import annotations

import math

import pytest

from genloop.errors import GenloopError
from genloop.evaluate.fairness import gender_balance, per_class_summary, representation


def test_per_class_summary_for_accuracy_and_for_a_distance() -> None:
    accuracy = per_class_summary({"shirt": 0.6, "sneaker": 1.0, "bag": 0.8}, higher_is_better=True)
    assert (accuracy.worst_class, accuracy.worst, accuracy.best_class) == ("shirt", 0.6, "sneaker")
    assert accuracy.mean == pytest.approx(0.8) and accuracy.gap == pytest.approx(0.4)
    assert accuracy.as_metrics("accuracy") == {
        "accuracy_worst": 0.6,
        "accuracy_mean": accuracy.mean,
        "accuracy_gap": accuracy.gap,
    }
    fd = per_class_summary({"shirt": 30.0, "sneaker": 5.0, "bag": float("nan")}, higher_is_better=False)
    assert (fd.worst_class, fd.worst, fd.best, fd.mean) == ("shirt", 30.0, 5.0, 17.5)
    with pytest.raises(GenloopError, match="no per-class values"):
        per_class_summary({}, higher_is_better=True)


def test_representation_shares_distance_and_ratios() -> None:
    data = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    samples = ["a"] * 70 + ["b"] * 30  # the model never draws "c"
    result = representation(samples, data)
    assert result.sample_share == {"a": 0.7, "b": 0.3, "c": 0.0}
    assert result.total_variation == pytest.approx(0.2)  # ½(0.2 + 0 + 0.2)
    assert result.ratio["a"] == pytest.approx(1.4) and result.ratio["c"] == 0.0
    assert result.most_under_represented == "c"
    assert representation(data, data).total_variation == 0.0
    # counts work as well as label lists; a class only in the samples has ratio inf
    odd = representation({"a": 1, "z": 1}, {"a": 4}, classes=["a", "q"])
    assert odd.ratio == {"a": 0.5, "q": 1.0, "z": math.inf}
    assert odd.total_variation == pytest.approx(0.5)
    with pytest.raises(GenloopError, match="no samples"):
        representation([], data)


def test_gender_balance_english() -> None:
    texts = [
        "He is a doctor. She is a nurse. He was the best doctor in town!",
        "My sister is an engineer; the engineer said her code was fine.",
        "The doctor and his wife arrived. The teacher sat down.",
    ]
    result = gender_balance(texts, ["doctor", "nurse", "engineer", "teacher", "pilot"])
    doctor = result.per_word["doctor"]
    assert (doctor.male, doctor.female) == (3, 1)  # "his wife" counts for both
    assert (result.per_word["nurse"].male, result.per_word["nurse"].female) == (0, 1)
    assert (result.per_word["engineer"].male, result.per_word["engineer"].female) == (0, 2)
    assert result.per_word["teacher"].male_share is None  # seen, but with no gendered term
    assert result.per_word["doctor"].log_ratio == pytest.approx(math.log2(3.5 / 1.5))
    # skew: doctor 2/4, nurse 1, engineer 1 → mean 5/6
    assert result.skew == pytest.approx((0.5 + 1 + 1) / 3)
    assert gender_balance(["The theme is here."], ["theme"]).per_word["theme"].male == 0  # "he" ≠ "the"


def test_gender_balance_chinese_and_balanced_text() -> None:
    texts = ["他是医生。她是护士。她也是医生！", "男护士很少，女护士很多。"]
    result = gender_balance(texts, ["医生", "护士"])
    assert (result.per_word["医生"].male, result.per_word["医生"].female) == (1, 1)
    assert (result.per_word["护士"].male, result.per_word["护士"].female) == (1, 2)
    assert result.skew == pytest.approx((0 + 1 / 3) / 2)
    balanced = gender_balance(["He is a chef.", "She is a chef."], ["chef"])
    assert balanced.skew == 0.0 and balanced.per_word["chef"].male_share == 0.5
    with pytest.raises(GenloopError, match="needs words"):
        gender_balance(texts, [])
