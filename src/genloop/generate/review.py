"""The review queue: generated items a person must look at before they can be published.

    generated ──► ready ─────────────────────────────► published
         │          └──reject──► rejected ◄──reject──┐
         └────────► review ──approve──► approved ─────► published
                       └────reject────► rejected ──approve──► approved

An item lands in `review` when a safety check failed or its channel reviews everything.
Only `ready` and `approved` items are publishable; every transition is appended to the
item's `review_log` with who, when and why, so an audit can replay the decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, utcnow
from genloop.errors import GenloopError, NotFoundError
from genloop.models.versions import current_actor

STATUSES = ("ready", "review", "approved", "rejected", "published")
PUBLISHABLE = frozenset({"ready", "approved", "published"})
_ALLOWED = {
    "approved": frozenset({"review", "rejected"}),
    "rejected": frozenset({"review", "ready", "approved"}),
}


@dataclass(frozen=True)
class ReviewItem:
    id: str
    status: str
    modality: str
    model_version_id: str
    condition: dict[str, Any]
    path: str
    channel: str
    verdicts: list[dict[str, Any]]
    review_log: list[dict[str, Any]]
    created_at: datetime

    @property
    def failed_checks(self) -> list[dict[str, Any]]:
        return [v for v in self.verdicts if not v.get("passed", True)]


def _item(row: ContentItem) -> ReviewItem:
    return ReviewItem(
        row.id,
        row.status,
        row.modality,
        row.model_version_id,
        dict(row.condition),
        row.path,
        row.channel,
        list(row.verdicts or []),
        list(row.review_log or []),
        row.created_at,
    )


def list_items(catalog: Catalog, status: str | None = "review", *, limit: int = 100) -> list[ReviewItem]:
    """Items with `status` (None: any), oldest first."""
    if status is not None and status not in STATUSES:
        raise GenloopError(f"unknown status {status!r}", hint=f"statuses: {', '.join(STATUSES)}")
    with catalog.session() as session:
        query = select(ContentItem).order_by(ContentItem.created_at, ContentItem.id).limit(limit)
        if status is not None:
            query = query.where(ContentItem.status == status)
        return [_item(row) for row in session.scalars(query)]


def _find(session: Session, content_id: str) -> ContentItem:
    row = session.get(ContentItem, content_id)
    if row is not None:
        return row
    if len(content_id) >= 4:  # a unique prefix, as printed by `genloop review ls`
        rows = session.scalars(
            select(ContentItem).where(ContentItem.id.startswith(content_id, autoescape=True)).limit(2)
        ).all()
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise GenloopError(f"content id prefix {content_id!r} is ambiguous", hint="give more characters")
    raise NotFoundError(
        f"content item {content_id!r} is not in the catalog",
        hint="`genloop review ls --status any` lists items",
    )


def show(catalog: Catalog, content_id: str) -> ReviewItem:
    with catalog.session() as session:
        return _item(_find(session, content_id))


def transition(
    catalog: Catalog,
    content_ids: Sequence[str],
    to: str,
    *,
    note: str | None = None,
    actor: str | None = None,
) -> list[ReviewItem]:
    """Move every item to `to` ("approved" | "rejected"), or none of them (one transaction)."""
    if to not in _ALLOWED:
        raise GenloopError(f"a reviewer can only approve or reject (got {to!r})")
    if to == "rejected" and not (note or "").strip():
        raise GenloopError("rejecting needs a reason", hint="pass --reason 'why this must not be published'")
    actor = actor or current_actor()
    with catalog.session() as session:
        rows = [_find(session, content_id) for content_id in content_ids]
        for row in rows:
            if row.status not in _ALLOWED[to]:
                raise GenloopError(
                    f"content item {row.id} is {row.status}; it cannot become {to}",
                    hint=f"only items that are {' or '.join(sorted(_ALLOWED[to]))} can",
                )
        for row in rows:
            entry = {"from": row.status, "to": to, "actor": actor, "note": note, "at": utcnow().isoformat()}
            row.review_log = [*(row.review_log or []), entry]  # a new list: JSON columns track assignment
            row.status = to
        session.flush()
        return [_item(row) for row in rows]


def approve(
    catalog: Catalog, content_ids: Sequence[str], *, note: str | None = None, actor: str | None = None
) -> list[ReviewItem]:
    return transition(catalog, content_ids, "approved", note=note, actor=actor)


def reject(
    catalog: Catalog, content_ids: Sequence[str], *, reason: str, actor: str | None = None
) -> list[ReviewItem]:
    return transition(catalog, content_ids, "rejected", note=reason, actor=actor)
