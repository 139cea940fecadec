"""Batched sampling of planned items, one call per chunk, each item with its own seed.

    image  model.sample(n, class indices, seeds=…)      (n, C, H, W) in [0, 1] → PIL images
    text   gpt: model.sample(n, prompts, seeds=…)        rows batched by prompt length
           hf-causal-lm: model.sample(1, prompt, seed=s) per item (HF `generate` draws from the
                         global RNG, so batching would tie an item's text to its batch)
    music  model.generate_midi(n, class indices, seeds=…) Standard MIDI Files

Per-item seeds make item i exactly what sampling it alone gives (models/seeds.py), and the
image families compute each item's products row by row (models/rows.py), so a request's
bytes do not depend on the batch size, the chunking, or the executor. With one torch thread
that holds bit for bit (tests/generate/test_engine.py); with more, torch's CPU convolutions
of a few channels (seen at 8 → 4, not at the cpu preset's 64 → 32) may split their sums by
thread, and a pixel can then differ by one level between batch sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from genloop.generate.requests import ItemSpec, modality_of


def to_pil(image: torch.Tensor) -> Image.Image:
    """(C, H, W) in [0, 1] → an 8-bit greyscale or RGB image."""
    return to_pil_images(image[None])[0]


def to_pil_images(images: torch.Tensor) -> list[Image.Image]:
    """(N, C, H, W) in [0, 1] → N 8-bit greyscale or RGB images (one conversion for the batch)."""
    array = images.float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if array.shape[3] == 1:
        return [Image.fromarray(np.ascontiguousarray(a[:, :, 0]), mode="L") for a in array]
    return [Image.fromarray(np.ascontiguousarray(a), mode="RGB") for a in array]


def _class_indices(specs: Sequence[ItemSpec], classes: list[str]) -> torch.Tensor | None:
    if not classes:
        return None
    return torch.tensor([classes.index(spec.condition["label"]) for spec in specs], dtype=torch.long)


@torch.no_grad()
def sample_chunk(
    model: Any, family: str, classes: list[str], specs: Sequence[ItemSpec], params: dict[str, Any]
) -> list[Image.Image | str | bytes]:
    """The sampled data of `specs`, in order: PIL images, strings or MIDI bytes."""
    n = len(specs)
    seeds = [spec.seed for spec in specs]
    modality = modality_of(family)
    if modality == "image":
        condition = _class_indices(specs, classes)  # None for an unconditional model
        images = model.sample(n, condition, seed=seeds[0], seeds=seeds, **params)
        return list(to_pil_images(images))
    if modality == "music":
        return list(
            model.generate_midi(n, _class_indices(specs, classes), seed=seeds[0], seeds=seeds, **params)
        )
    prompts = [spec.condition.get("prompt", "") for spec in specs]
    if family == "gpt":
        return list(model.sample(n, prompts, seed=seeds[0], seeds=seeds, **params))
    return [model.sample(1, prompt, seed=s, **params)[0] for prompt, s in zip(prompts, seeds, strict=True)]
