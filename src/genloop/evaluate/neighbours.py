"""Memory-bounded nearest-neighbour queries on feature sets (the core of P/R and memorisation).

Distances come from ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b, one (rows × cols) block at a
time, so 10k generated × 60k training features never need the 4.8 GB full matrix:
peak memory is about `BLOCK_ROWS × BLOCK_COLS` float64 values (64 MB by default).
Callers should centre both sets on a common mean first: it shrinks ‖a‖² and with it
the cancellation error of the expansion.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

BLOCK_ROWS = 1024
BLOCK_COLS = 8192


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, D), (m, D) → (n, m) squared Euclidean distances, clamped at 0 against rounding."""
    # one fused matmul (‖b‖² − 2 a·b) then in-place ops: no (n, m) temporaries beyond the result
    distances = torch.addmm(b.square().sum(1)[None, :], a, b.T, alpha=-2.0)
    return distances.add_(a.square().sum(1)[:, None]).clamp_min_(0.0)


def _blocks(count: int, size: int | None, default: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive blocks; `size` None means the module default (read at call time)."""
    size = size or default
    for start in range(0, count, size):
        yield start, min(start + size, count)


def kth_neighbour_distances(
    queries: torch.Tensor,
    reference: torch.Tensor,
    k: int,
    *,
    exclude_self: bool = False,
    block_rows: int | None = None,
    block_cols: int | None = None,
) -> torch.Tensor:
    """(n,) distance from each query to its k-th nearest reference vector (k = 1: the nearest).

    exclude_self: queries *is* reference, and a point is not its own neighbour (the
    diagonal is skipped, so exact duplicates elsewhere in the set still count).
    """
    count = len(reference) - (1 if exclude_self else 0)
    if not 1 <= k <= count:
        raise ValueError(f"k = {k} needs at least {k} reference vectors besides the query; there are {count}")
    result = torch.empty(len(queries), dtype=queries.dtype)
    for r0, r1 in _blocks(len(queries), block_rows, BLOCK_ROWS):
        best = torch.full((r1 - r0, k), float("inf"), dtype=queries.dtype)  # running k smallest, squared
        for c0, c1 in _blocks(len(reference), block_cols, BLOCK_COLS):
            block = squared_distances(queries[r0:r1], reference[c0:c1])
            if exclude_self and max(r0, c0) < min(r1, c1):
                rows = torch.arange(max(r0, c0), min(r1, c1))  # the diagonal inside this block
                block[rows - r0, rows - c0] = float("inf")
            nearest = block.topk(min(k, c1 - c0), dim=1, largest=False).values
            best = torch.cat([best, nearest], dim=1).topk(k, dim=1, largest=False).values
        result[r0:r1] = best.max(dim=1).values.sqrt()
    return result


def mutual_coverage(
    first: torch.Tensor,
    second: torch.Tensor,
    first_radii: torch.Tensor,
    second_radii: torch.Tensor,
    *,
    block_rows: int | None = None,
    block_cols: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which vectors of each set lie inside some ball of the other set, from one pass over the distances.

    Returns ((n,) bool: first[i] within ‖first[i] − second[j]‖ ≤ second_radii[j] for some j,
             (m,) bool: second[j] within ‖second[j] − first[i]‖ ≤ first_radii[i] for some i).
    """
    first_squared, second_squared = first_radii.square(), second_radii.square()
    first_inside = torch.zeros(len(first), dtype=torch.bool)
    second_inside = torch.zeros(len(second), dtype=torch.bool)
    for r0, r1 in _blocks(len(first), block_rows, BLOCK_ROWS):
        for c0, c1 in _blocks(len(second), block_cols, BLOCK_COLS):
            block = squared_distances(first[r0:r1], second[c0:c1])  # (rows, cols)
            first_inside[r0:r1] |= (block <= second_squared[None, c0:c1]).any(dim=1)
            second_inside[c0:c1] |= (block <= first_squared[r0:r1, None]).any(dim=0)
    return first_inside, second_inside


def mean_pairwise_distance(features: torch.Tensor, *, block_rows: int | None = None) -> float:
    """Mean ‖x_i − x_j‖ over all ordered pairs i ≠ j (the diagonal's zeros are left out)."""
    count = len(features)
    if count < 2:
        raise ValueError("a mean pairwise distance needs at least 2 vectors")
    total = 0.0
    for r0, r1 in _blocks(count, block_rows, BLOCK_ROWS):
        block = squared_distances(features[r0:r1], features)
        rows = torch.arange(r0, r1)
        block[rows - r0, rows] = 0.0  # rounding would otherwise leave ~1e-7 on the diagonal
        total += float(block.sqrt().sum())
    return total / (count * (count - 1))
