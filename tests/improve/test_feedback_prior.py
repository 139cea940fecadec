"""A conditional sequence model's class prior moves toward the classes whose items people liked."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from genloop.improve.dispatch import feedback_prior, item_reward
from genloop.improve.feedback_data import Preferences, ScoredItem
from genloop.models.label_prior import write_label_prior

CLASSES = ["major", "minor"]


def scored(i: int, label: str, likes: int, looks: int) -> ScoredItem:
    return ScoredItem(
        content_id=f"c{i}", model_version_id="m-v1", modality="music", condition={"label": label},
        label=label, path=Path(f"/x/{i}.mid"), score=likes - (looks - likes) * 0.3, event_ids=(i,),
        counts={"impression": looks, "like": likes},
    )  # fmt: skip


def preferences(items: list[ScoredItem]) -> Preferences:
    return Preferences("m", [i for i in items if i.score > 0], [i for i in items if i.score <= 0], [], [], {},
                       {}, [], {})  # fmt: skip


def test_liked_class_gains_mass_and_the_old_prior_multiplies_in(tmp_path: Path) -> None:
    items = [scored(i, "major", 14, 20) for i in range(4)] + [
        scored(10 + i, "minor", 4, 20) for i in range(4)
    ]
    loaded = SimpleNamespace(path=tmp_path, classes=CLASSES)
    uniform_start = feedback_prior(loaded, preferences(items), beta=1.0)  # type: ignore[arg-type]
    assert uniform_start["major"] > 0.8 and sum(uniform_start.values()) == pytest.approx(1.0)
    write_label_prior(tmp_path, {"major": 0.1, "minor": 0.9}, CLASSES, source="test")
    skewed = feedback_prior(loaded, preferences(items), beta=1.0)  # type: ignore[arg-type]
    assert 0.1 < skewed["major"] / sum(skewed.values()) < uniform_start["major"]


def test_no_labelled_feedback_keeps_the_champions_prior(tmp_path: Path) -> None:
    write_label_prior(tmp_path, {"major": 0.3, "minor": 0.7}, CLASSES, source="test")
    loaded = SimpleNamespace(path=tmp_path, classes=CLASSES)
    assert feedback_prior(loaded, preferences([]), beta=1.0) == {"major": 0.3, "minor": 0.7}  # type: ignore[arg-type]
    assert item_reward(scored(1, "major", 3, 12)) == 0.25
