"""Generation: a request (model version, condition, seed) → labelled files + catalog rows.

The same request always gives the same bytes: each item's seed is derived from the
request seed, its class and its index, and its id is a hash of the request, so
re-running a generation finds the items it already made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from PIL import Image

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem
from genloop.errors import GenloopError
from genloop.generate.labels.implicit import aigc_label, encode_png_with_label
from genloop.models.registry import GenerativeModel
from genloop.models.versions import LoadedModel, load_model_version
from genloop.progress import stage_progress
from genloop.storage import atomic_write_bytes, stable_hash
from genloop.workspace import Workspace


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    """Model version id, `name@alias`, or a model name (its champion)."""
    per_class: int = 8
    labels: Sequence[str] | None = None
    """Classes to draw (default: every class the model knows)."""
    seed: int = 0
    producer: str = "genloop"


@dataclass(frozen=True)
class GeneratedItem:
    id: str
    label: str
    seed: int
    path: Path
    created: bool


def item_seed(request_seed: int, label: str, index: int) -> int:
    return int(stable_hash([request_seed, label, index], 8), 16) % (2**31)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(C, H, W) in [0, 1] → an 8-bit greyscale or RGB image."""
    array = (image.clamp(0, 1).mul(255).round().to(torch.uint8)).permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(array[:, :, 0]), mode="L")
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def generate(workspace: Workspace, catalog: Catalog, request: GenerationRequest) -> list[GeneratedItem]:
    loaded = load_model_version(workspace, catalog, request.model)
    labels = list(request.labels) if request.labels else list(loaded.classes)
    unknown = [label for label in labels if label not in loaded.classes]
    if unknown:
        raise GenloopError(
            f"model {loaded.version_id} has no class {', '.join(map(repr, unknown))}",
            hint=f"known classes: {', '.join(loaded.classes)}",
        )
    items: list[GeneratedItem] = []
    with stage_progress("generate", total=len(labels) * request.per_class) as advance:
        for label in labels:
            for index in range(request.per_class):
                items.append(_generate_one(workspace, catalog, loaded, request, label, index))
                advance(1)
    return items


def _generate_one(
    workspace: Workspace,
    catalog: Catalog,
    loaded: LoadedModel,
    request: GenerationRequest,
    label: str,
    index: int,
) -> GeneratedItem:
    seed = item_seed(request.seed, label, index)
    condition = {"label": label}
    params: dict[str, object] = {}
    content_id = stable_hash({"model": loaded.version_id, "condition": condition, "seed": seed}, 32)
    path = workspace.path("content", content_id[:2], f"{content_id}.png")
    with catalog.session() as session:
        existing = session.get(ContentItem, content_id)
        if existing is not None and path.is_file():
            return GeneratedItem(content_id, label, seed, path, created=False)
    class_index = torch.tensor([loaded.classes.index(label)])
    sampler = cast(GenerativeModel, loaded.model)
    with torch.no_grad():
        image = sampler.sample(1, class_index, seed=seed)[0]
    aigc = aigc_label(producer=request.producer, produce_id=content_id, model_version=loaded.version_id)
    atomic_write_bytes(path, encode_png_with_label(to_pil(image), aigc))
    with catalog.session() as session:
        if session.get(ContentItem, content_id) is None:
            session.add(
                ContentItem(
                    id=content_id,
                    model_version_id=loaded.version_id,
                    modality="image",
                    path=workspace.relative(path),
                    condition=condition,
                    seed=seed,
                    params=params,
                    labels={"implicit": {"AIGC": aigc}},
                )
            )
    return GeneratedItem(content_id, label, seed, path, created=True)
