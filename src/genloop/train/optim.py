"""Optimizer, learning-rate schedule and gradient clipping shared by every recipe.

    lr(step) = lr · step / warmup                         step < warmup
             = lr                                         constant
             = lr · (r + (1 − r) · ½ (1 + cos(π · p)))    cosine, p = (step − warmup) / (total − warmup)

with r = `min_lr_ratio`. The schedule is a `LambdaLR`, so its position is part of the
checkpoint and a resumed run continues on the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from genloop.config import TrainConfig


def build_optimizer(
    parameters: Iterable[nn.Parameter],
    cfg: TrainConfig,
    *,
    learning_rate: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.AdamW:
    """AdamW over `parameters`; weight decay applies only to matrices and kernels (dim ≥ 2).

    Biases, norms and embeddings' 1-d parameters are not decayed (decaying a LayerNorm gain
    towards 0 only hurts). `fused` kernels are used where torch has them for the device.
    """
    params = [p for p in parameters if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    device = params[0].device if params else torch.device("cpu")
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=learning_rate or cfg.learning_rate, betas=betas, fused=fused)


def lr_multiplier(
    step: int, *, warmup_steps: int, total_steps: int, schedule: str, min_ratio: float
) -> float:
    """The factor applied to the base learning rate at optimizer step `step` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, *, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up then constant or cosine, over `total_steps` optimizer steps."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_multiplier(
            step,
            warmup_steps=cfg.warmup_steps,
            total_steps=total_steps,
            schedule=cfg.lr_schedule,
            min_ratio=cfg.min_lr_ratio,
        ),
    )


def clip_gradients(model: nn.Module, max_norm: float | None) -> float | None:
    """Clip the global gradient norm to `max_norm` (None: leave them); the norm before clipping."""
    if max_norm is None:
        return None
    return float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))


def total_steps(cfg: TrainConfig, *, batches_per_epoch: int) -> int:
    """Optimizer steps the run will take: epochs × batches, capped by `max_steps`."""
    steps = cfg.epochs * batches_per_epoch
    return min(steps, cfg.max_steps) if cfg.max_steps else steps
