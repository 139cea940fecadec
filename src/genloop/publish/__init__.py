"""Publishing content items on channels (gallery, folder, webhook, feed; see `channels/`).

Only publishable items go out: `ready` (passed every check) and `approved` (a reviewer
said yes). Items in `review` or `rejected` are held back here and refused by the channels.
Pass the workspace so each publication gets its published copy (the file with the GB 45438
propagator fields filled, `propagate.py`); without one, only the catalog records it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem
from genloop.config import GenloopConfig
from genloop.generate.review import PUBLISHABLE
from genloop.publish.channels.registry import check_content_id, get_channel
from genloop.workspace import Workspace


@dataclass(frozen=True)
class PublishOutcome:
    publications: list[str]
    held: dict[str, str] = field(default_factory=dict)
    """Items not published, by id → their status (review, rejected)."""


def publish_content(
    catalog: Catalog,
    content_item_ids: Iterable[str],
    channel: str = "gallery",
    *,
    workspace: Workspace | None = None,
    config: GenloopConfig | None = None,
    arm: str | None = None,
) -> PublishOutcome:
    """Publish each publishable item on `channel` (idempotent); hold back the others."""
    target = get_channel(channel, workspace=workspace, config=config)
    ids = [check_content_id(i) for i in content_item_ids]
    with catalog.session() as session:
        statuses: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            query = select(ContentItem.id, ContentItem.status).where(ContentItem.id.in_(chunk))
            statuses.update((item_id, status) for item_id, status in session.execute(query))
    held = {i: statuses[i] for i in ids if i in statuses and statuses[i] not in PUBLISHABLE}
    publications = [target.publish(catalog, item_id, arm=arm) for item_id in ids if item_id not in held]
    return PublishOutcome(publications, held)


def publish_items(
    catalog: Catalog,
    content_item_ids: Iterable[str],
    channel: str = "gallery",
    *,
    workspace: Workspace | None = None,
    config: GenloopConfig | None = None,
    arm: str | None = None,
) -> list[str]:
    """Publish each publishable item on `channel` (idempotent); return the publication ids."""
    outcome = publish_content(catalog, content_item_ids, channel, workspace=workspace, config=config, arm=arm)
    return outcome.publications
