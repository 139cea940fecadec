"""A conditional model's class prior: draws follow it, stay stable per index; bad files fail clearly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from genloop.config import GenloopConfig
from genloop.errors import GenloopError
from genloop.generate.requests import GenerationRequest, plan_items
from genloop.improve.image_recipes import reward_weighted_prior
from genloop.loop.arms import allocate_slots
from genloop.models.label_prior import draw_labels, read_label_prior, uniform_prior, write_label_prior
from genloop.publish.allocation import ArmCounts

CLASSES = ["0", "1", "2"]


def test_draws_follow_the_prior_and_keep_their_prefix() -> None:
    prior = {"0": 0.7, "1": 0.2, "2": 0.1}
    drawn = draw_labels(prior, 4000, seed=3)
    shares = {label: n / 4000 for label, n in Counter(drawn).items()}
    for label, p in prior.items():
        assert abs(shares[label] - p) < 0.03, (label, shares)
    assert draw_labels(prior, 10, seed=3) == drawn[:10]  # more items keep the first ones
    assert draw_labels(prior, 50, seed=4) != drawn[:50]


def test_missing_file_means_uniform_and_written_prior_reads_back(tmp_path: Path) -> None:
    assert read_label_prior(tmp_path, CLASSES) == uniform_prior(CLASSES)
    written = write_label_prior(tmp_path, {"0": 3.0, "2": 1.0}, CLASSES, source="test")
    assert written == {"0": 0.75, "1": 0.0, "2": 0.25}
    assert read_label_prior(tmp_path, CLASSES) == written


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "unreadable class prior"), ('{"prior": [1, 2]}', "not a class prior"),
     ('{"prior": {"9": 1.0}}', "unknown classes"), ('{"prior": {"0": -1.0}}', "finite weights")],
)  # fmt: skip
def test_a_broken_prior_file_is_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "label_prior.json").write_text(content, encoding="utf-8")
    with pytest.raises(GenloopError, match=message):
        read_label_prior(tmp_path, CLASSES)


def test_a_draw_request_plans_labels_from_the_prior_with_stable_content_ids() -> None:
    config = GenloopConfig()
    request = GenerationRequest(model="m-v1", draw=300, seed=5)
    plan = plan_items(request, version_id="m-v1", family="vae", classes=CLASSES, config=config,
                      label_prior={"0": 0.0, "1": 1.0, "2": 0.0})  # fmt: skip
    assert {item.condition["label"] for item in plan.items} == {"1"}
    again = plan_items(request, version_id="m-v1", family="vae", classes=CLASSES, config=config,
                       label_prior={"0": 0.0, "1": 1.0, "2": 0.0})  # fmt: skip
    assert [i.content_id for i in again.items] == [i.content_id for i in plan.items]
    assert len({i.content_id for i in plan.items}) == 300
    with pytest.raises(GenloopError, match="takes no labels"):
        plan_items(GenerationRequest(model="m-v1", draw=3, labels=["0"]), version_id="m-v1", family="vae",
                   classes=CLASSES, config=config)  # fmt: skip
    with pytest.raises(GenloopError, match="text models take prompts"):
        plan_items(GenerationRequest(model="m-v1", draw=3), version_id="m-v1", family="gpt", classes=[],
                   config=config)  # fmt: skip


def test_reward_weighting_moves_the_prior_toward_the_rewarded_class() -> None:
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    weights = torch.tensor([4.0, 4.0, 1.0, 1.0, 1.0, 1.0])
    updated = reward_weighted_prior(uniform_prior(CLASSES), CLASSES, y, weights)
    total = sum(updated.values())
    assert updated["0"] / total == pytest.approx(4 / 6)
    # the old prior multiplies in: a class the champion rarely drew stays rare
    skewed = reward_weighted_prior({"0": 0.1, "1": 0.45, "2": 0.45}, CLASSES, y, weights)
    assert skewed["0"] / sum(skewed.values()) == pytest.approx(0.4 / (0.4 + 0.45 + 0.45))


def test_slots_split_evenly_until_both_arms_have_exposure_then_follow_the_evidence() -> None:
    fresh = [ArmCounts("a", 5, 50), ArmCounts("b", 0, 0)]
    assert allocate_slots(fresh, 6, seed=0, min_exposure=30) == ["a", "b", "a", "b", "a", "b"]
    seasoned = [ArmCounts("a", 5, 95), ArmCounts("b", 60, 40)]
    slots = allocate_slots(seasoned, 200, seed=0, min_exposure=30)
    assert slots.count("b") > 190
    assert allocate_slots([ArmCounts("a", 0, 0)], 3, seed=0, min_exposure=30) == ["a", "a", "a"]
