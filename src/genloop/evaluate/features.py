"""Feature sets as the image metrics take them: validated (N, D) float64 matrices.

Every metric in this package (Fréchet distance, KID, precision/recall, memorisation,
diversity) compares sets of feature vectors, e.g. the 128-d penultimate activations
of the real-data LeNet (`LeNet.embed`). They accept numpy arrays or torch tensors and
fail here, with the set named, on input they cannot measure.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import torch

from genloop.errors import DataError

Features: TypeAlias = np.ndarray | torch.Tensor


def as_features(features: Features, *, what: str, min_samples: int = 1) -> torch.Tensor:
    """`features` as a CPU float64 tensor (N, D), N ≥ `min_samples`, every value finite."""
    try:
        matrix = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
    except (TypeError, ValueError, RuntimeError) as error:
        raise DataError(f"{what} is not a numeric array of feature vectors: {error}") from error
    matrix = matrix.detach().cpu()
    if matrix.ndim != 2:
        raise DataError(
            f"{what} must be a 2-D array of feature vectors (N samples, D features); "
            f"got shape {tuple(matrix.shape)}",
            hint="stack one feature vector per sample, e.g. classifier.model.embed(images)",
        )
    count, dim = matrix.shape
    if count == 0:
        raise DataError(
            f"{what} is empty (0 feature vectors)", hint="generate or load samples before evaluating"
        )
    if dim == 0:
        raise DataError(f"{what} has feature vectors of length 0")
    if count < min_samples:
        raise DataError(
            f"{what} has {count} feature vector(s); this metric needs at least {min_samples}",
            hint="evaluate more samples",
        )
    if not (matrix.is_floating_point() or matrix.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise DataError(f"{what} has dtype {matrix.dtype}; expected real numbers")
    matrix = matrix.to(torch.float64)
    finite = torch.isfinite(matrix).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        raise DataError(
            f"{what} has NaN or infinite values in {len(bad)} of {count} rows (first: row {int(bad[0])})",
            hint="the model's samples or the feature network diverged; check the generated images",
        )
    return matrix


def same_dimension(a: torch.Tensor, b: torch.Tensor, *, what_a: str, what_b: str) -> None:
    """Refuse to compare feature sets from different feature spaces."""
    if a.shape[1] != b.shape[1]:
        raise DataError(
            f"{what_a} has {a.shape[1]}-d features but {what_b} has {b.shape[1]}-d features",
            hint="extract both sets with the same feature network",
        )
