"""Public feeds of a feed channel, and the published copies they link to.

    GET /feeds/{channel}.json     JSON Feed 1.1 (https://jsonfeed.org/version/1.1)
    GET /feeds/{channel}.rss      RSS 2.0 (https://www.rssboard.org/rss-specification)
    GET /published/{publication}  the published copy (GB 45438 propagator fields filled)

Both feeds list the channel's publications newest first (`?limit=`, at most 100); each
item links to its page `/content/{id}` and attaches the published file. Only channels of
kind `feed` have feeds. RSS is built with ElementTree, so every title is XML-escaped;
JSON is UTF-8 without ASCII escaping, so Chinese titles arrive as written.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, Publication
from genloop.errors import NotFoundError
from genloop.feedback.events import as_utc
from genloop.publish.channels.registry import CHANNEL_NAME
from genloop.publish.propagate import PUBLISHED_DIRNAME
from genloop.server.deps import CatalogDep, WorkspaceDep
from genloop.server.errors import ERROR_RESPONSES
from genloop.workspace import Workspace

router = APIRouter(tags=["feeds"])

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".wav": "audio/wav",
    ".mid": "audio/midi",
    ".musicxml": "application/vnd.recordare.musicxml+xml",
}
ChannelPath = Annotated[str, Path(pattern=f"^{CHANNEL_NAME.pattern}$", description="A feed channel.")]
LimitQuery = Annotated[int, Query(ge=1, le=100, description="At most this many items, newest first.")]


class FeedJSONResponse(JSONResponse):
    media_type = "application/feed+json"


class FeedAttachment(BaseModel):
    url: str
    mime_type: str
    size_in_bytes: int | None = None


class FeedItemExtension(BaseModel):
    content_id: str
    modality: str
    model_version_id: str
    arm: str | None
    ai_generated: bool = True


class FeedItem(BaseModel):
    id: str
    url: str
    title: str
    content_text: str
    date_published: datetime
    attachments: list[FeedAttachment]
    genloop: FeedItemExtension = Field(serialization_alias="_genloop")


class JsonFeed(BaseModel):
    version: str = JSON_FEED_VERSION
    title: str
    home_page_url: str
    feed_url: str
    language: str | None = None
    items: list[FeedItem]


@dataclass(frozen=True)
class _Entry:
    publication_id: str
    published_at: datetime
    arm: str | None
    content_id: str
    modality: str
    model_version_id: str
    title: str
    file: FilePath | None


def _title(item: ContentItem) -> str:
    condition = item.condition or {}
    subject = condition.get("prompt") or condition.get("label")
    subject_text = str(subject) if subject is not None else item.id[:12]
    return f"{subject_text} · {item.modality} (AI生成 / AI-generated)"


def _published_file(workspace: Workspace, stored: str | None) -> FilePath | None:
    """The published copy, only when it resolves inside `.genloop/published/` and exists."""
    if stored is None:
        return None
    root = (workspace.state_dir / PUBLISHED_DIRNAME).resolve()
    path = workspace.artifact(stored).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def _feed_entries(workspace: Workspace, catalog: Catalog, channel: str, limit: int) -> list[_Entry]:
    config = workspace.config
    if config.channel_policy(channel).channel_kind(channel) != "feed" or (
        channel not in config.channels and channel != "feed"
    ):
        raise NotFoundError(
            f"no feed channel {channel!r}",
            hint=f'add [channels.{channel}] with kind = "feed" to genloop.toml and publish to it',
        )
    query = (
        select(Publication, ContentItem)
        .join(ContentItem, Publication.content_item_id == ContentItem.id)
        .where(Publication.channel == channel)
        .order_by(Publication.published_at.desc(), Publication.id.desc())
        .limit(limit)
    )
    with catalog.session() as session:
        rows = session.execute(query).all()
        return [
            _Entry(
                publication_id=pub.id,
                published_at=as_utc(pub.published_at),
                arm=pub.arm,
                content_id=item.id,
                modality=item.modality,
                model_version_id=item.model_version_id,
                title=_title(item),
                file=_published_file(workspace, pub.path),
            )
            for pub, item in rows
        ]


def _attachment(request: Request, entry: _Entry) -> FeedAttachment | None:
    if entry.file is None:
        return None
    url = str(request.url_for("get_published_file", publication_id=entry.publication_id))
    mime = MEDIA_TYPES.get(entry.file.suffix.lower(), "application/octet-stream")
    return FeedAttachment(url=url, mime_type=mime, size_in_bytes=entry.file.stat().st_size)


def _page_url(request: Request, content_id: str) -> str:
    return str(request.url_for("content_page", content_id=content_id))


@router.get(
    "/feeds/{channel}.json",
    response_model=JsonFeed,
    response_class=FeedJSONResponse,
    operation_id="get_json_feed",
    summary="A feed channel as JSON Feed 1.1, newest first",
    responses=ERROR_RESPONSES,
)
def get_json_feed(
    request: Request,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    channel: ChannelPath,
    limit: LimitQuery = 50,
) -> Any:
    entries = _feed_entries(workspace, catalog, channel, limit)
    items = []
    for entry in entries:
        attachment = _attachment(request, entry)
        items.append(
            FeedItem(
                id=entry.publication_id,
                url=_page_url(request, entry.content_id),
                title=entry.title,
                content_text=entry.title,
                date_published=entry.published_at,
                attachments=[attachment] if attachment else [],
                genloop=FeedItemExtension(
                    content_id=entry.content_id,
                    modality=entry.modality,
                    model_version_id=entry.model_version_id,
                    arm=entry.arm,
                ),
            )
        )
    feed = JsonFeed(
        title=f"{workspace.config.project.name} · {channel}",
        home_page_url=str(request.url_for("gallery")),
        feed_url=str(request.url_for("get_json_feed", channel=channel)),
        items=items,
    )
    return FeedJSONResponse(feed.model_dump(mode="json", by_alias=True))


@router.get(
    "/feeds/{channel}.rss",
    response_class=Response,
    response_model=None,  # XML, not JSON
    operation_id="get_rss_feed",
    summary="A feed channel as RSS 2.0, newest first",
    responses={200: {"content": {"application/rss+xml": {}}}, **ERROR_RESPONSES},
)
def get_rss_feed(
    request: Request,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    channel: ChannelPath,
    limit: LimitQuery = 50,
) -> Response:
    entries = _feed_entries(workspace, catalog, channel, limit)
    rss = ET.Element("rss", version="2.0")
    head = ET.SubElement(rss, "channel")
    ET.SubElement(head, "title").text = f"{workspace.config.project.name} · {channel}"
    ET.SubElement(head, "link").text = str(request.url_for("gallery"))
    ET.SubElement(head, "description").text = f"AI-generated content published on {channel} (AI生成)"
    ET.SubElement(head, "generator").text = "genloop"
    for entry in entries:
        node = ET.SubElement(head, "item")
        ET.SubElement(node, "title").text = entry.title
        ET.SubElement(node, "link").text = _page_url(request, entry.content_id)
        ET.SubElement(node, "guid", isPermaLink="false").text = entry.publication_id
        ET.SubElement(node, "pubDate").text = format_datetime(entry.published_at)
        attachment = _attachment(request, entry)
        if attachment is not None:
            ET.SubElement(
                node,
                "enclosure",
                url=attachment.url,
                length=str(attachment.size_in_bytes),
                type=attachment.mime_type,
            )
    body = ET.tostring(rss, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/rss+xml; charset=utf-8")


@router.get(
    "/published/{publication_id}",
    response_class=FileResponse,
    response_model=None,  # a file, not JSON
    operation_id="get_published_file",
    summary="The published copy of a publication (its propagator fields filled)",
    responses={200: {"content": {"image/png": {}, "text/plain": {}}}, **ERROR_RESPONSES},
)
def get_published_file(
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    publication_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
) -> FileResponse:
    with catalog.session() as session:
        publication = session.get(Publication, publication_id)
        stored = publication.path if publication is not None else None
    path = _published_file(workspace, stored)
    media_type = MEDIA_TYPES.get(path.suffix.lower()) if path is not None else None
    if path is None or media_type is None:
        raise NotFoundError(
            f"publication {publication_id!r} has no published copy here",
            hint="publications made without a workspace (catalog only) have none; publish again with the CLI",
        )
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=media_type, headers=headers)
