"""Read-side queries the API and the web pages share: published items, one content item, its file.

Content files are served only for catalogued content items, and only when the
stored path resolves inside the workspace's `.genloop/content/` folder, so no
request (and no tampered catalog row) can make the server read any other file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, ModelVersion, Publication
from genloop.errors import NotFoundError
from genloop.feedback.analytics import counts_for_publications
from genloop.feedback.events import as_utc
from genloop.workspace import Workspace

CONTENT_DIRNAME = "content"
MEDIA_TYPES = {".png": "image/png", ".webp": "image/webp", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass(frozen=True)
class PublishedItem:
    publication_id: str
    channel: str
    arm: str | None
    published_at: datetime
    content_id: str
    modality: str
    label: str | None
    model_version_id: str
    model_name: str
    model_version: int
    likes: int
    dislikes: int


@dataclass(frozen=True)
class ContentDetail:
    id: str
    modality: str
    label: str | None
    condition: dict[str, Any]
    seed: int
    params: dict[str, Any]
    labels: dict[str, Any]
    created_at: datetime
    model_version_id: str
    model_name: str
    model_version: int
    publications: list[PublishedItem]


def _label(condition: dict[str, Any]) -> str | None:
    label = condition.get("label")
    return None if label is None else str(label)


def _published_item(
    pub: Publication, item: ContentItem, model: ModelVersion, counts: tuple[int, int]
) -> PublishedItem:
    return PublishedItem(
        publication_id=pub.id,
        channel=pub.channel,
        arm=pub.arm,
        published_at=as_utc(pub.published_at),
        content_id=item.id,
        modality=item.modality,
        label=_label(item.condition),
        model_version_id=model.id,
        model_name=model.name,
        model_version=model.version,
        likes=counts[0],
        dislikes=counts[1],
    )


def list_publications(
    catalog: Catalog, *, limit: int, offset: int = 0, model_version_id: str | None = None
) -> tuple[list[PublishedItem], bool]:
    """Published items, newest first, with their vote counts; and whether more follow."""
    query = (
        select(Publication, ContentItem, ModelVersion)
        .join(ContentItem, Publication.content_item_id == ContentItem.id)
        .join(ModelVersion, ContentItem.model_version_id == ModelVersion.id)
        .order_by(Publication.published_at.desc(), Publication.id.desc())
        .limit(limit + 1)
        .offset(offset)
    )
    if model_version_id is not None:
        query = query.where(ModelVersion.id == model_version_id)
    with catalog.session() as session:
        rows = session.execute(query).all()
    rows, has_more = rows[:limit], len(rows) > limit
    counts = counts_for_publications(catalog, [pub.id for pub, _, _ in rows])
    return [_published_item(pub, item, model, counts[pub.id]) for pub, item, model in rows], has_more


def get_content(catalog: Catalog, content_id: str) -> ContentDetail:
    with catalog.session() as session:
        item = session.get(ContentItem, content_id)
        if item is None:
            raise _content_not_found(content_id)
        model = item.model_version
        publications = session.scalars(
            select(Publication)
            .where(Publication.content_item_id == item.id)
            .order_by(Publication.published_at.desc(), Publication.id.desc())
        ).all()
    counts = counts_for_publications(catalog, [pub.id for pub in publications])
    return ContentDetail(
        id=item.id,
        modality=item.modality,
        label=_label(item.condition),
        condition=item.condition,
        seed=item.seed,
        params=item.params,
        labels=item.labels,
        created_at=as_utc(item.created_at),
        model_version_id=model.id,
        model_name=model.name,
        model_version=model.version,
        publications=[_published_item(pub, item, model, counts[pub.id]) for pub in publications],
    )


def content_file(workspace: Workspace, catalog: Catalog, content_id: str) -> tuple[Path, str]:
    """The file of a catalogued content item and its media type; NotFoundError otherwise."""
    with catalog.session() as session:
        item = session.get(ContentItem, content_id)
        stored = item.path if item is not None else None
    if stored is None:
        raise _content_not_found(content_id)
    content_root = (workspace.state_dir / CONTENT_DIRNAME).resolve()
    path = workspace.artifact(stored).resolve()
    media_type = MEDIA_TYPES.get(path.suffix.lower())
    if not path.is_relative_to(content_root) or media_type is None:
        raise NotFoundError(
            f"content item {content_id!r} has no servable file",
            hint=f"only images inside {content_root} are served",
        )
    if not path.is_file():
        raise NotFoundError(
            f"the file of content item {content_id!r} is missing",
            hint="run `genloop generate` again to recreate it",
        )
    return path, media_type


def _content_not_found(content_id: str) -> NotFoundError:
    return NotFoundError(
        f"content item {content_id!r} is not in the catalog",
        hint="content ids are listed by GET /api/v1/publications and shown in the gallery",
    )
