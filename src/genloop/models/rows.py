"""Matrix products whose rows do not depend on the batch: each row is a lone row's product.

One (B, C) × (C, O) product (`F.linear`, `@`) goes through a CPU BLAS kernel chosen by B,
and its sums differ from a lone row's in the last bit (1–2e-7, at one thread or more). An
image decoded in a batch of 64 then differs, now and then in one 8-bit pixel, from the
same image decoded alone, which breaks "a request's bytes do not depend on the batch
size" (generate/sampler.py). A batch of one-row products, `baddbmm((B, 1, C), (B, C, O))`,
is computed row by row the same way whatever B is (checked at 1 and 2 threads by
tests/models/test_rows.py); for the VAE's latent → feature map layer (26 → 3,136) it is
also bit for bit the lone row's `F.linear`, so one-by-one samples keep their bytes. The
price of exactness, paid only when sampling: ≈ 0.01 ms a row for that layer.
`generate/gpt_rows.py` does the same for the GPT's decoding loop, keeping the expanded
views across steps (`_Product`) because it runs every product thousands of times.

Elementwise functions are usually batch-invariant, with one exception seen: torch's
`sigmoid` on an AVX-512 CPU computes the vectorised body and the leftover tail of a tensor
differently (last bit), so an item's values depend on where it falls in the batch whenever
its size is not a multiple of the vector block (784 pixels: yes; 768: no); tanh, exp,
softmax, GELU and erf were the same in every position. `per_item` runs such a function on
each item alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def linear_rows(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """`linear(x)` for x (B, C) → (B, O), each row's bits independent of the batch."""
    return matmul_rows(x, linear.weight.t(), linear.bias)


def matmul_rows(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`x @ matrix (+ bias)`, x (B, C), matrix (C, O) → (B, O); each row's bits independent of the batch."""
    batch = x.shape[0]
    rows = x[:, None, :]  # (B, 1, C)
    weights = matrix.expand(batch, -1, -1)  # (B, C, O), a view
    if bias is None:
        return torch.bmm(rows, weights)[:, 0]
    return torch.baddbmm(bias.expand(batch, 1, -1), rows, weights)[:, 0]


def per_item(function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`function` applied to each item of x (B, …) alone, as one-by-one sampling applies it; (B, …)."""
    if x.shape[0] <= 1:  # one item (or none): the call is already the item's own
        return function(x)
    return torch.cat([function(x[i : i + 1]) for i in range(x.shape[0])])
