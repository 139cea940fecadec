"""Exponential moving average of a model's weights (Polyak averaging).

    θ_ema ← d · θ_ema + (1 − d) · θ        after every optimizer step

with an effective decay min(d, (1 + n) / (10 + n)) over the first steps so that the
average is not dominated by the random initialisation. Samples from the average are
usually sharper and steadier than from the raw weights (GAN generators, diffusion).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ExponentialMovingAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for param in self.model.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_params: list[torch.Tensor] = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)  # running statistics (BatchNorm) are copied, not averaged

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["weights"])
