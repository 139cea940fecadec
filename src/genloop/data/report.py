"""The HTML cleaning report (`genloop data report`): what each step kept and dropped, and why.

A `manifest.json` already holds the numbers; this page is for a person deciding
whether the cleaning was right: counts per step, each drop reason with the files
it hit (thumbnails of dropped images when the version has a rejects shard), what
PII was redacted, the label distribution, and the sources with their licenses.

For an annotate version the page covers the clean version it came from as well, so
one report shows the whole path from collected files to labelled records. The file
is self-contained (inline CSS, images as data: URIs): it can be mailed or attached
to a ticket and still render.
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from PIL import Image
from sqlalchemy import select

from genloop import __version__
from genloop.catalog import Catalog
from genloop.catalog.models import DatasetVersion
from genloop.data.datasets import DatasetHandle, open_dataset_version
from genloop.data.rejects import iter_rejects
from genloop.errors import NotFoundError
from genloop.workspace import Workspace

PREVIEWS_PER_REASON = 8
THUMBNAIL_SIDE = 96
TEXT_PREVIEW_CHARS = 160
REPORTED_STAGES = ("clean", "annotate")


@dataclass
class Preview:
    """One dropped record as the page shows it: a thumbnail (data: URI) or a text excerpt."""

    where: str
    reason: str
    modality: str
    image: str | None = None
    text: str | None = None


@dataclass
class DropReason:
    kind: str
    count: int
    steps: list[str]
    examples: list[str]
    previews: list[Preview] = field(default_factory=list)

    @property
    def image_previews(self) -> list[Preview]:
        return [p for p in self.previews if p.modality == "image"]

    @property
    def text_previews(self) -> list[Preview]:
        return [p for p in self.previews if p.text is not None]


@dataclass
class StageReport:
    """One version's part of the page (a clean or an annotate version)."""

    dataset: DatasetHandle
    steps: list[dict[str, Any]]
    reasons: list[DropReason]
    pii: dict[str, int]
    rejects: dict[str, Any] | None

    @property
    def seen(self) -> int:
        return int(self.steps[0]["seen"]) if self.steps else int(self.dataset.manifest["records"])

    @property
    def dropped(self) -> int:
        return sum(reason.count for reason in self.reasons)


def newest_version(catalog: Catalog, stage: str = "clean") -> str:
    """The id of the most recently written version of `stage` (any dataset name)."""
    with catalog.session() as session:
        row = session.scalars(
            select(DatasetVersion)
            .where(DatasetVersion.stage == stage)
            .order_by(DatasetVersion.created_at.desc())
        ).first()
    if row is None:
        raise NotFoundError(
            f"no {stage} dataset version yet", hint="run `genloop clean` (or `genloop run`) first"
        )
    return row.id


def thumbnail_uri(payload: bytes) -> str | None:
    """A small PNG of an image payload as a data: URI; None when it does not decode (that may be why)."""
    try:
        with Image.open(io.BytesIO(payload)) as image:
            image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG: decode at reduced size
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            small = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except Exception:  # truncated, bombs, not images: exactly what the report is showing
        return None
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def text_excerpt(payload: bytes) -> str:
    """The start of a text payload as a person should see it; binary or undecodable bytes escaped."""
    if not payload.strip():
        return "(empty)" if not payload else "(only whitespace)"
    head = payload[: TEXT_PREVIEW_CHARS * 4]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head.decode("utf-8", errors="ignore") if exc.start >= len(head) - 3 else ""
    if not text or any(ord(char) < 32 and char not in "\t\n" for char in text):
        return repr(payload[: TEXT_PREVIEW_CHARS // 2])  # b'\x00\x01PK...': shows what is wrong
    return text[:TEXT_PREVIEW_CHARS] + (
        "…" if len(text) > TEXT_PREVIEW_CHARS or len(payload) > len(head) else ""
    )


def _previews(dataset: DatasetHandle) -> dict[str, list[Preview]]:
    """Up to PREVIEWS_PER_REASON previews per reason kind, from the rejects shard (if any)."""
    previews: dict[str, list[Preview]] = defaultdict(list)
    for reject in iter_rejects(dataset):
        shown = previews[reject.kind]
        if len(shown) >= PREVIEWS_PER_REASON:
            continue
        preview = Preview(reject.record.where, reject.reason, reject.record.modality)
        if reject.record.modality == "image":
            preview.image = thumbnail_uri(reject.record.payload)
        elif reject.record.modality == "text":
            preview.text = text_excerpt(reject.record.payload)
        shown.append(preview)
    return previews


def stage_report(dataset: DatasetHandle) -> StageReport:
    report = dataset.manifest.get("report") or {}
    steps = report.get("steps", [])
    steps_of: dict[str, list[str]] = defaultdict(list)
    pii: dict[str, int] = defaultdict(int)
    for step in steps:
        for kind in step.get("dropped", {}):
            steps_of[kind].append(step["name"])
        for key, n in step.get("counters", {}).items():
            if key.startswith("pii:"):
                pii[key.removeprefix("pii:")] += n
    previews = _previews(dataset)
    reasons = [
        DropReason(kind, counted["count"], steps_of[kind], counted["examples"], previews.get(kind, []))
        for kind, counted in report.get("dropped", {}).items()
    ]
    reasons.sort(key=lambda reason: (-reason.count, reason.kind))
    return StageReport(dataset, steps, reasons, dict(pii), dataset.manifest.get("rejects"))


def _lineage(workspace: Workspace, catalog: Catalog, dataset: DatasetHandle) -> list[DatasetHandle]:
    """`dataset` and its ancestors, oldest first (collect → clean → annotate)."""
    chain = [dataset]
    while chain[-1].manifest.get("parent") and len(chain) < 20:
        try:
            chain.append(open_dataset_version(workspace, catalog, chain[-1].manifest["parent"]))
        except NotFoundError:
            break  # a parent removed from disk: report what is left
    return chain[::-1]


def _bars(counts: dict[str, int]) -> list[dict[str, Any]]:
    largest = max(counts.values(), default=0) or 1
    return [{"name": name, "count": n, "percent": 100 * n / largest} for name, n in counts.items()]


def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["bars"] = _bars
    env.filters["thousands"] = lambda n: f"{n:,}"
    return env


def render_report(workspace: Workspace, catalog: Catalog, version_id: str) -> str:
    """The HTML page for dataset version `version_id` (a clean or annotate version)."""
    dataset = open_dataset_version(workspace, catalog, version_id)
    chain = _lineage(workspace, catalog, dataset)
    stages = [stage_report(d) for d in chain if d.manifest.get("stage") in REPORTED_STAGES]
    if not stages:
        stages = [stage_report(dataset)]
    template = resources.files("genloop.data").joinpath("templates/data_report.html").read_text("utf-8")
    pii_total: dict[str, int] = defaultdict(int)
    for stage in stages:
        for kind, n in stage.pii.items():
            pii_total[kind] += n
    return (
        _environment()
        .from_string(template)
        .render(
            dataset=dataset,
            manifest=dataset.manifest,
            chain=chain,
            stages=stages,
            collected=chain[0].manifest["records"],
            dropped=sum(stage.dropped for stage in stages),
            pii=dict(sorted(pii_total.items(), key=lambda item: -item[1])),
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            genloop_version=__version__,
        )
    )


def write_report(workspace: Workspace, catalog: Catalog, version_id: str, output: Path) -> Path:
    """Render the report of `version_id` to `output` (UTF-8 HTML); returns the path written."""
    html = render_report(workspace, catalog, version_id)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    return output
