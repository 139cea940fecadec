"""Creatives: a generated product image and a generated line composed into one labelled PNG.

image model   the workspace's text → image model (a `vae` or `ddpm` version trained with
              [train.model] conditioning = "text"), prompted with the product ("a shoe");
              a clear error saying what to train when there is none
lines         the product's top K stored lines (`genloop adcopy generate` first): the order of
              shelf.list_candidates (newest model's lines, best rank first), publishable and
              meeting the product's constraints; one creative per line, all over the same image
              (one seed), so two creatives of a product differ only in their line — A/B arms
compose       the image scaled up (nearest neighbour: a 28-pixel sample stays honest pixels,
              not invented detail) above a band holding the line, wrapped, in a font that can
              draw it (Chinese included: genloop.generate.labels.explicit.find_font)
finish        the generate stage's image labels: visible "AI生成" mark, invisible watermark,
              signed GB 45438 metadata (PNG iTXt + XMP); stored as a content item of the
              image model on channel "adcopy-creatives" with the copy line's content id in its
              condition (`shows`: lineage to both; reactions to the creative count for the line
              in the ranker's rows and when the copy model improves, improve/feedback_data.py)
publish       publish_creatives: a product's creatives as arms A, B, C… through
              shelf.publish_candidates (every id checked before any is published); reactions to
              a creative count for the line it shows when the ranker is fitted (feedback.py)
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

from genloop.apps.adcopy.products import Product
from genloop.apps.adcopy.shelf import CREATIVES_CHANNEL, list_candidates, publish_candidates
from genloop.catalog import Catalog
from genloop.catalog.models import SHOWS_KEY, ModelVersion
from genloop.errors import GenloopError, NotFoundError
from genloop.generate.artifact import Artifact
from genloop.generate.finish import ChannelPlan
from genloop.generate.jobs import ChunkResult
from genloop.generate.labels.apply import LabelContext
from genloop.generate.labels.explicit import find_font
from genloop.generate.postprocess.text import is_chinese
from genloop.generate.requests import ItemPlan, ItemSpec, item_seed
from genloop.generate.review import PUBLISHABLE
from genloop.generate.safety.registry import SafetyContext
from genloop.generate.sampler import to_pil
from genloop.generate.store import store_results
from genloop.models.versions import load_model_version
from genloop.storage import stable_hash
from genloop.workspace import Workspace

CHANNEL = CREATIVES_CHANNEL
MAX_LINES = 26
"""Creatives per product at most: one arm letter each, A … Z."""
PRODUCER = "genloop adcopy"
SIZE = 384
BAND = 128
IMAGE_FAMILIES = ("vae", "ddpm")
TRAIN_HINT = (
    "train a text → image model in this workspace first, e.g. `genloop init --template images` with "
    '[train] family = "ddpm" (or "vae") and [train.model] conditioning = "text", then `genloop run`; '
    "or name one with --image-model"
)


@dataclass
class Creative:
    product: Product
    line: str
    line_content_id: str
    image_model: str
    prompt: str
    content_id: str
    path: Path
    publication_id: str | None = None
    arm: str | None = None
    """Set once published (publish_creatives)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product.id,
            "line": self.line,
            "line_content_id": self.line_content_id,
            "image_model": self.image_model,
            "prompt": self.prompt,
            "content_id": self.content_id,
            "path": str(self.path),
            "publication_id": self.publication_id,
            "arm": self.arm,
        }


def text_image_model(workspace: Workspace, catalog: Catalog, reference: str | None) -> str:
    """The version id of the text → image model to use (named, or the newest champion there is)."""
    if reference:
        loaded = load_model_version(workspace, catalog, reference)
        if loaded.family not in IMAGE_FAMILIES or loaded.config.get("conditioning") != "text":
            raise GenloopError(
                f"{loaded.version_id} is a {loaded.family} model with "
                f"{loaded.config.get('conditioning', 'no')} conditioning, not a text → image model",
                hint=TRAIN_HINT,
            )
        return loaded.version_id
    with catalog.session() as session:
        rows = session.scalars(
            select(ModelVersion)
            .where(ModelVersion.family.in_(IMAGE_FAMILIES), ModelVersion.archived_at.is_(None))
            .order_by(ModelVersion.created_at.desc())
        ).all()
        candidates = [(row.id, workspace.artifact(row.path) / "config.json") for row in rows]
    for version_id, config_path in candidates:
        if config_path.is_file():
            config = json.loads(config_path.read_text(encoding="utf-8"))
            if config.get("conditioning") == "text":
                return version_id
    raise NotFoundError(f"no text → image model in {workspace.root}", hint=TRAIN_HINT)


def top_lines(catalog: Catalog, product: Product, k: int = 1) -> list[tuple[str, str]]:
    """(content id, text) of the product's best `k` stored lines: shelf.list_candidates' order
    (newest model's lines, best rank first), publishable, meeting the constraints, distinct texts.

    Fewer than `k` such lines is a NotFoundError saying how many there are."""
    if not 1 <= k <= MAX_LINES:
        raise GenloopError(f"{k} lines per product: choose 1 to {MAX_LINES}", hint="e.g. --lines 2")
    chosen: dict[str, str] = {}
    for candidate in list_candidates(catalog, product.id, limit=500):
        if candidate.status in PUBLISHABLE and candidate.satisfied and candidate.text:
            chosen.setdefault(candidate.text, candidate.content_item_id)
        if len(chosen) == k:
            return [(content_id, text) for text, content_id in chosen.items()]
    have = f"only {len(chosen)}" if chosen else "no"
    raise NotFoundError(
        f"{have} stored ad-copy line(s) for product {product.id!r} that meet its constraints; {k} asked for",
        hint=f"write lines first: genloop adcopy generate PRODUCTS -n {max(k, 2)}"
        + (f" (or ask for --lines {len(chosen)})" if chosen else ""),
    )


def best_line(catalog: Catalog, product: Product) -> tuple[str, str]:
    """(content id, text) of the product's best stored line (see top_lines)."""
    return top_lines(catalog, product, 1)[0]


def compose(image: Image.Image, line: str) -> Image.Image:
    """The image (scaled to SIZE) above a white band with `line` in it, as one RGB image."""
    canvas = Image.new("RGB", (SIZE, SIZE + BAND), "white")
    canvas.paste(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.NEAREST), (0, 0))
    font_path = find_font(line)
    draw = ImageDraw.Draw(canvas)
    chinese = is_chinese(line)
    for size in (30, 26, 22, 18, 15, 12):
        font = ImageFont.truetype(font_path, size)
        per_line = max(4, int((SIZE - 24) / (size * (1.0 if chinese else 0.55))))
        wrapped = (
            [line[i : i + per_line] for i in range(0, len(line), per_line)]
            if chinese
            else textwrap.wrap(line, per_line)
        )
        height = len(wrapped) * int(size * 1.3)
        if height <= BAND - 16 and all(draw.textlength(part, font=font) <= SIZE - 24 for part in wrapped):
            break
    y = SIZE + (BAND - height) // 2
    for part in wrapped:
        draw.text((12, y), part, font=font, fill="black")
        y += int(size * 1.3)
    return canvas


def make_creative(
    workspace: Workspace,
    catalog: Catalog,
    product: Product,
    *,
    image_model: str | None = None,
    prompt: str | None = None,
    seed: int = 0,
) -> Creative:
    """One labelled creative PNG for `product` and its best line, stored as a content item."""
    [creative] = make_creatives(
        workspace, catalog, product, lines=1, image_model=image_model, prompt=prompt, seed=seed
    )
    return creative


def make_creatives(
    workspace: Workspace,
    catalog: Catalog,
    product: Product,
    *,
    lines: int = 1,
    image_model: str | None = None,
    prompt: str | None = None,
    seed: int = 0,
) -> list[Creative]:
    """A labelled creative PNG for each of the product's top `lines` lines, one image under all,
    each stored as a content item; nothing is stored when there are fewer lines or no model."""
    chosen = top_lines(catalog, product, lines)
    version_id = text_image_model(workspace, catalog, image_model)
    loaded = load_model_version(workspace, catalog, version_id)
    prompt = prompt or f"a {product.category or product.name}"
    image_seed = item_seed(seed, prompt, 0)
    model: Any = loaded.model
    image = to_pil(model.sample(1, prompt, seed=image_seed, seeds=[image_seed])[0])
    plan = ChannelPlan.build(
        workspace.config,
        channel=CHANNEL,
        modality="image",
        safety_context=SafetyContext(workspace, catalog, version_id),
        label_context=LabelContext(workspace, PRODUCER, version_id),
    )
    plan.chain = []  # the creative is composed at its final size; the default `resize` would shrink it
    made = []
    for line_id, line in chosen:
        condition = {
            "app": "adcopy",
            "product": product.id,
            "prompt": prompt,
            "line": line,
            SHOWS_KEY: line_id,
        }
        content_id = stable_hash(
            {"model": version_id, "condition": condition, "seed": image_seed, "channel": CHANNEL}, 32
        )
        artifact = Artifact(
            content_id, "image", compose(image, line), "png", meta={"model_version": version_id}
        )
        finished = plan.finish(artifact)
        item_plan = ItemPlan(version_id, loaded.family, "image", stable_hash(condition, 32), {}, [])
        [(_, path)] = store_results(
            workspace,
            catalog,
            item_plan,
            CHANNEL,
            [ChunkResult(ItemSpec(content_id, condition, 0, image_seed), finished, 0.0)],
        )
        made.append(Creative(product, line, line_id, version_id, prompt, content_id, path))
    return made


def arm_name(index: int) -> str:
    """0 → "A", 1 → "B", … (a product has at most MAX_LINES creatives)."""
    return chr(ord("A") + index)


def publish_creatives(
    workspace: Workspace, catalog: Catalog, creatives: list[Creative], *, channel: str
) -> list[Creative]:
    """Publish each product's creatives on `channel` as arms A, B, C… (in their order), through
    shelf.publish_candidates: every id is checked before any is published. Sets publication_id
    and arm on each creative and returns them."""
    arms: list[str] = []
    per_product: dict[str, int] = {}
    for creative in creatives:
        index = per_product.get(creative.product.id, 0)
        per_product[creative.product.id] = index + 1
        arms.append(arm_name(index))
    choices: list[tuple[str, str | None]] = [
        (c.content_id, arm) for c, arm in zip(creatives, arms, strict=True)
    ]
    published = publish_candidates(workspace, catalog, choices, channel=channel)
    for creative, (_, publication_id, arm) in zip(creatives, published, strict=True):
        creative.publication_id, creative.arm = publication_id, arm
    return creatives
