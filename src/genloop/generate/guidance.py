"""Reward-guided sampling at generation time: each image is the best of n candidates under a reward.

    genloop generate -m fashion --best-of 4                 # the newest reward model in the workspace
    genloop generate -m fashion --best-of 4 --reward ID     # the reward trained on feedback dataset ID

The loop's reward model (improve/reward.py: a like-logit on the evaluate classifier's features,
trained on the audience's likes and dislikes) already steers fine-tuning; here it steers sampling
without training anything: candidate j of an item with seed s is sampled with seed s + j · 7919,
every candidate is scored, the highest score is kept. Cost: n × the model's sampling; nothing else
changes (post-processing, checks and labels see one image per item).

A request carries the guidance in its sampling parameters, `{"best_of": n, "reward": dataset id}`,
so it is part of every item's content id (a guided item is a different item from an unguided one)
and the same request still gives the same bytes. `split_guidance` takes those keys off before the
model sees its parameters. Image families only: a text or music model has no image reward.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genloop.errors import GenloopError, NotFoundError
from genloop.workspace import Workspace

ImageReward = Callable[[torch.Tensor], torch.Tensor]
"""images (N, C, H, W) in [0, 1] → rewards (N,); higher is preferred."""

GUIDANCE_PARAMS = ("best_of", "reward")
CANDIDATE_SEED_STRIDE = 7919
MAX_BEST_OF = 64
REWARD_SUFFIX = ".reward"


class BestOfN:
    """A sampler with the image models' `sample` signature; each image the best of `n` candidates.

    Candidate j of an item sampled with seed s uses seed s + j · CANDIDATE_SEED_STRIDE
    (candidate 0 is the plain sample), so the choice is reproducible and independent of batching.
    """

    def __init__(self, model: Any, reward: ImageReward, n: int) -> None:
        if n < 1:
            raise GenloopError(f"best-of-n needs n ≥ 1 (got {n})")
        self.model, self.reward, self.n = model, reward, n

    @property
    def classes(self) -> list[str]:
        return list(getattr(self.model, "classes", []))

    @torch.no_grad()
    def sample(
        self, n: int, condition: Any = None, *, seed: int, seeds: list[int] | None = None, **params: Any
    ) -> torch.Tensor:
        candidates = []
        for j in range(self.n):
            shift = j * CANDIDATE_SEED_STRIDE
            per_item = {"seeds": [s + shift for s in seeds]} if seeds is not None else {}
            candidates.append(self.model.sample(n, condition, seed=seed + shift, **per_item, **params))
        stacked = torch.stack(candidates)  # (n_candidates, n, C, H, W)
        scores = torch.stack([self.reward(batch.float().clamp(0, 1)).reshape(n) for batch in stacked])
        best = scores.argmax(0)  # (n,)
        return stacked[best, torch.arange(n)]


@dataclass(frozen=True)
class Guidance:
    best_of: int
    reward: str
    """The feedback dataset version id whose reward model scores the candidates."""


def split_guidance(params: Mapping[str, Any]) -> tuple[dict[str, Any], Guidance | None]:
    """(the model's own sampling parameters, the guidance in `params` or None)."""
    own = {key: value for key, value in params.items() if key not in GUIDANCE_PARAMS}
    best_of = params.get("best_of")
    if best_of is None or best_of == 1:
        return own, None
    if not isinstance(best_of, int) or isinstance(best_of, bool) or not 1 <= best_of <= MAX_BEST_OF:
        raise GenloopError(f"best_of must be a whole number from 1 to {MAX_BEST_OF} (got {best_of!r})")
    reward = params.get("reward")
    if not isinstance(reward, str) or not reward:
        raise GenloopError(
            "best_of needs a reward: the id of the feedback dataset whose reward model scores candidates",
            hint="genloop generate --best-of N picks the newest reward model; --reward ID names one",
        )
    return own, Guidance(best_of, reward)


def reward_models(workspace: Workspace) -> list[Path]:
    """Every saved reward model folder in the workspace, newest first."""
    root = workspace.state_dir / "datasets"
    found = [path.parent for path in root.glob(f"*/*{REWARD_SUFFIX}/config.json")] if root.is_dir() else []
    return sorted(found, key=lambda path: (path.stat().st_mtime, path.name), reverse=True)


def reward_id(folder: Path) -> str:
    return folder.name.removesuffix(REWARD_SUFFIX)


def resolve_reward(workspace: Workspace, ref: str | None) -> str:
    """`ref` checked against the workspace's reward models (a feedback dataset id), or the newest one."""
    folders = reward_models(workspace)
    if ref is None:
        if not folders:
            raise NotFoundError(
                f"no reward model in {workspace.root}",
                hint="one is trained from likes and dislikes by `genloop improve` (image models, recipe "
                "reward-weighted or rejection-sampling) or by `genloop loop`",
            )
        return reward_id(folders[0])
    if any(reward_id(folder) == ref for folder in folders):
        return ref
    known = ", ".join(reward_id(folder) for folder in folders[:5]) or "none"
    raise NotFoundError(f"no reward model {ref!r} in {workspace.root}", hint=f"known (newest first): {known}")


def guided_sampler(workspace: Workspace, model: Any, modality: str, guidance: Guidance) -> BestOfN:
    """`model` wrapped to sample the best of `guidance.best_of` under the named reward model."""
    if modality != "image":
        raise GenloopError(
            f"best_of is reward-guided sampling for image models; this model makes {modality}",
            hint="drop --best-of (text and music models are steered by `genloop improve` instead)",
        )
    from genloop.improve.reward import load_reward_model  # the improve stage builds on this one

    matches = [folder for folder in reward_models(workspace) if reward_id(folder) == guidance.reward]
    if not matches:
        raise NotFoundError(
            f"reward model {guidance.reward!r} is not in {workspace.root}",
            hint="leave out --reward for the newest; the error for an unknown --reward lists them",
        )
    reward = load_reward_model(matches[0])
    return BestOfN(model, reward.score, guidance.best_of)
