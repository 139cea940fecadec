"""Which data a step sees, as a function of the seed and the position alone.

A resumed run, and every rank of a data-parallel run, must draw exactly what an
uninterrupted single-process run draws, so no recipe keeps a long-lived data RNG:

    epoch_order(n, seed, epoch)   the shuffle of epoch e: randperm(n) seeded by seed + e
    step_generator(seed, step)    the generator of optimizer step s (random blocks, windows,
                                  noise, captions): seeded by seed · 1,000,003 + s
"""

from __future__ import annotations

import torch


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator for step `step`, independent of every other step's."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % 2**63)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order (n,) in which epoch `epoch` visits n examples."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
