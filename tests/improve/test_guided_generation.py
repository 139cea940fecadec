"""`genloop generate --best-of N`: reward-guided sampling through the generate stage, on the tiny
digit VAE whose audience likes bold strokes (the reward model of improve/image_loop.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from genloop.cli.main import app
from genloop.errors import GenloopError, NotFoundError
from genloop.generate.guidance import BestOfN, guided_sampler, resolve_reward, split_guidance
from genloop.improve.reward import save_reward_model
from genloop.models.versions import load_model_version
from improve.image_loop import Loop, ink, loop_fixture  # noqa: F401 (the `loop` fixture)


def _generate(loop: Loop, *extra: str) -> dict[str, object]:
    command = ["generate", "-w", str(loop.workspace.root), "--model", loop.champion, "-n", "12"]
    result = CliRunner().invoke(app, [*command, "--seed", "3", "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _mean_ink(out: dict[str, object]) -> float:
    paths = [Path(item["path"]) for item in out["items"]]  # type: ignore[attr-defined, index]
    images = [np.asarray(Image.open(path).convert("L").resize((28, 28)), dtype=np.float32) for path in paths]
    return float(ink(torch.from_numpy(np.stack(images))[:, None] / 255).mean())


def test_best_of_n_through_generate_keeps_the_rewarded_candidates(loop: Loop) -> None:
    dataset = loop.preferences.dataset
    assert dataset is not None
    save_reward_model(loop.reward, loop.report, dataset)
    assert resolve_reward(loop.workspace, None) == dataset.id  # the newest is the default

    plain = _generate(loop)
    guided = _generate(loop, "--best-of", "4")
    plain_ids = {item["id"] for item in plain["items"]}  # type: ignore[attr-defined]
    guided_ids = {item["id"] for item in guided["items"]}  # type: ignore[attr-defined]
    assert len(guided_ids) == len(plain_ids) == 12 * len(load_classes(loop))
    assert not plain_ids & guided_ids  # guidance is part of each item's content id
    # the hidden preference (bold strokes), measured on the stored, labelled files
    assert _mean_ink(guided) > _mean_ink(plain)

    again = _generate(loop, "--best-of", "4", "--reward", dataset.id)
    assert again["summary"]["new"] == 0  # type: ignore[index]  # the same request names the same items
    assert [i["id"] for i in again["items"]] == [i["id"] for i in guided["items"]]  # type: ignore[attr-defined]


def load_classes(loop: Loop) -> list[str]:
    return load_model_version(loop.workspace, loop.catalog, loop.champion).classes


def test_best_of_n_equals_the_plain_sample_for_n_1_and_is_batch_independent(loop: Loop) -> None:
    loaded = load_model_version(loop.workspace, loop.catalog, loop.champion)
    y = torch.zeros(4, dtype=torch.long)  # the fixture's VAE has one class, 'digit'
    seeds = [11, 12, 13, 14]
    one = BestOfN(loaded.model, loop.reward.score, 1).sample(4, y, seed=11, seeds=seeds)
    assert torch.equal(one, loaded.model.sample(4, y, seed=11, seeds=seeds))
    whole = BestOfN(loaded.model, loop.reward.score, 3).sample(4, y, seed=11, seeds=seeds)
    halves = [
        BestOfN(loaded.model, loop.reward.score, 3).sample(
            2, y[i : i + 2], seed=seeds[i], seeds=seeds[i : i + 2]
        )
        for i in (0, 2)
    ]
    assert torch.allclose(whole, torch.cat(halves), atol=1e-5)


def test_guidance_errors_say_what_to_do(loop: Loop) -> None:
    with pytest.raises(NotFoundError, match="no reward model 'nope'"):
        resolve_reward(loop.workspace, "nope")
    with pytest.raises(GenloopError, match="best_of needs a reward"):
        split_guidance({"best_of": 3})
    with pytest.raises(GenloopError, match="whole number"):
        split_guidance({"best_of": 1000, "reward": "x"})
    assert split_guidance({"best_of": 1, "temperature": 0.5}) == ({"temperature": 0.5}, None)
    own, guidance = split_guidance({"best_of": 2, "reward": "r", "steps": 4})
    assert own == {"steps": 4} and guidance is not None and guidance.best_of == 2
    with pytest.raises(GenloopError, match="image models; this model makes text"):
        guided_sampler(loop.workspace, object(), "text", guidance)
    result = CliRunner().invoke(
        app, ["generate", "-w", str(loop.workspace.root), "--model", loop.champion, "--reward", "x"]
    )
    assert isinstance(result.exception, GenloopError) and "--best-of" in str(result.exception)
