"""What every channel does when it publishes: the shared half of the one-method contract.

    place(setup, catalog, item_id, arm=...)            → Placement(publication_id, created, path)
      1. refuse bad ids, unknown items and items that are not `ready` / `approved` / `published`
      2. the publication id is a hash of (item, channel): publishing twice returns the first one
      3. write the published copy (propagator fields filled, see `propagate`) — before the row,
         so a crash leaves at most a file that the retry overwrites, never a row without its file
      4. one transaction: the Publication row (with its A/B arm and copy path), the item's status
         `published`, the copy's record in `labels.published`, and whatever the channel adds to
         it (`on_create`: the webhook's delivery row, an outbox that commits with the publication)

Two processes publishing the same item on the same channel race on the primary key; the
loser gets the winner's publication.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, Publication
from genloop.errors import GenloopError, NotFoundError
from genloop.generate.review import PUBLISHABLE
from genloop.publish.channels.registry import ChannelSetup, check_arm, check_content_id
from genloop.publish.propagate import write_published_copy
from genloop.storage import stable_hash

OnCreate = Callable[[Session, Publication, ContentItem], None]


@dataclass(frozen=True)
class Placement:
    publication_id: str
    created: bool
    path: str | None
    """The published copy, relative to the workspace (None: published without a workspace)."""


def publication_id_for(content_item_id: str, channel: str) -> str:
    return stable_hash({"content": content_item_id, "channel": channel}, 24)


def propagator_for(setup: ChannelSetup) -> str:
    return setup.policy.propagator or setup.config.generate.producer


def place(
    setup: ChannelSetup,
    catalog: Catalog,
    content_item_id: str,
    *,
    arm: str | None = None,
    on_create: OnCreate | None = None,
) -> Placement:
    check_content_id(content_item_id)
    check_arm(arm)
    publication_id = publication_id_for(content_item_id, setup.name)
    with catalog.session() as session:
        existing = session.get(Publication, publication_id)
        if existing is not None:
            return Placement(publication_id, False, existing.path)
        item = _publishable(session, content_item_id)
        source, labels, model_version = item.path, dict(item.labels), item.model_version_id
    propagator = propagator_for(setup)
    record: dict[str, Any] = {"ContentPropagator": propagator, "PropagateID": publication_id}
    path = None
    if setup.workspace is not None:
        copy = write_published_copy(
            setup.workspace,
            setup.config,
            source=source,
            labels=labels,
            model_version=model_version,
            publication_id=publication_id,
            propagator=propagator,
        )
        record = copy.record(setup.workspace, publication_id)
        path = record["path"]
    else:
        record.update(path=None, notes=["no workspace given: catalog only, no published copy"])
    try:
        with catalog.session() as session:
            item = _publishable(session, content_item_id)  # its status may have changed meanwhile
            publication = Publication(
                id=publication_id, content_item_id=item.id, channel=setup.name, arm=arm, path=path
            )
            session.add(publication)
            item.status = "published"
            item.labels = {
                **item.labels,
                "published": {**item.labels.get("published", {}), publication_id: record},
            }
            session.flush()
            if on_create is not None:
                on_create(session, publication, item)
    except IntegrityError:
        with catalog.session() as session:
            if session.get(Publication, publication_id) is None:
                raise
        return Placement(publication_id, False, path)
    return Placement(publication_id, True, path)


def _publishable(session: Session, content_item_id: str) -> ContentItem:
    item = session.get(ContentItem, content_item_id)
    if item is None:
        raise NotFoundError(
            f"content item {content_item_id!r} is not in the catalog",
            hint="content ids are printed by `genloop generate`; `genloop review ls --status any` lists them",
        )
    if item.status not in PUBLISHABLE:
        raise GenloopError(
            f"content item {content_item_id} is {item.status}: it cannot be published",
            hint=f"a reviewer must approve it first: genloop review approve {content_item_id}",
        )
    return item
