"""Seeded random draws for sampling: one generator per batch, or one per item.

`sample(n, …, seed=s)` draws the whole batch from one CPU generator, so an item's noise
depends on its position in the batch. `sample(n, …, seeds=[s_0, …, s_n−1])` gives item i
its own generator seeded s_i, so item i is exactly `sample(1, …, seed=s_i)` whatever
batch it is sampled in: what bulk generation needs for "same request, same bytes".
CPU generators make the draws identical on every device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genloop.errors import GenloopError


def generators(n: int, seed: int, seeds: Sequence[int] | None) -> torch.Generator | list[torch.Generator]:
    """One generator seeded `seed`, or n generators seeded `seeds` (checked to be n)."""
    if seeds is None:
        return torch.Generator().manual_seed(seed)
    if len(seeds) != n:
        raise GenloopError(f"seeds must hold one seed per item: {n} items, {len(seeds)} seeds")
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def standard_normal(shape: Sequence[int], generator: torch.Generator | list[torch.Generator]) -> torch.Tensor:
    """N(0, 1) noise of `shape` (batch first) on the CPU; per item when given a list of generators."""
    if isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator)
    return torch.cat([torch.randn((1, *shape[1:]), generator=g) for g in generator])


def categorical(probs: torch.Tensor, generator: torch.Generator | list[torch.Generator]) -> torch.Tensor:
    """One draw per row of probs (B, V) on the CPU → (B, 1) indices; per row with a list of generators.

    Per row, `torch.multinomial(p, 1, generator=g)` draws its one sample as argmax(p / q) with
    q ~ Exp(1) filled from g (its one-sample path, the Gumbel-max trick in exponential form,
    aten/src/ATen/native/Distributions.cpp). Here q is filled row by row from each row's
    generator and the division and argmax run once for the batch: the same tokens and the same
    generator states (tests/generate/test_token_rows.py checks both against torch.multinomial)
    in a fraction of the calls. Probabilities with a NaN go to torch.multinomial, for its error.
    """
    if isinstance(generator, torch.Generator):
        return torch.multinomial(probs, 1, generator=generator)
    if bool(probs.isnan().any()):
        return torch.cat(
            [torch.multinomial(row[None], 1, generator=g) for row, g in zip(probs, generator, strict=True)]
        )
    noise = torch.empty_like(probs)
    for row, g in zip(noise, generator, strict=True):
        row.exponential_(generator=g)
    return (probs / noise).argmax(-1, keepdim=True)
