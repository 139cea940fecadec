"""Class conditions as the image families accept them in `sample(n, condition, …)`."""

from __future__ import annotations

from typing import Any

import torch

from genloop.errors import GenloopError


def class_indices(n: int, condition: Any, classes: list[str], *, also_accepts: str = "") -> torch.Tensor:
    """`condition` → (n,) int64 class indices on the CPU.

    None cycles through the classes (0, 1, …, K−1, 0, …); a single index is used for all n;
    otherwise exactly n integer indices in 0..K−1. `also_accepts` completes the error's hint
    for families that take other conditions too (prompts, embeddings).
    """
    num_classes = len(classes)
    if condition is None:
        return torch.arange(n) % num_classes
    labels = torch.as_tensor(condition).reshape(-1).cpu()
    if labels.numel() == 1 and n > 1:
        labels = labels.expand(n)
    if (
        labels.is_floating_point()
        or labels.numel() != n
        or (labels.numel() and (labels.min() < 0 or labels.max() >= num_classes))
    ):
        raise GenloopError(
            f"condition must hold {n} class indices in 0..{num_classes - 1} (got {labels.tolist()[:10]})",
            hint=f"classes are {classes}" + (f"; {also_accepts}" if also_accepts else ""),
        )
    return labels.long()
