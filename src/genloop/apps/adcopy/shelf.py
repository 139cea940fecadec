"""Stored ad-copy candidates read back from the catalog, and published as A/B arms.

    list_candidates(catalog, product_id)   a product's stored lines (channel "adcopy"), best rank
                                           first, newest generation first: text, rank, score, the
                                           constraint check re-run now, publications with reactions
    list_products(catalog)                 product id → how many candidates are stored
    publish_candidates(..., [(id, arm)])   every id checked first: a stored line (channel "adcopy")
                                           or a creative showing one (channel "adcopy-creatives",
                                           creatives.py), publishable; then each is published on the
                                           channel with its arm, so likes / clicks on it (gallery,
                                           batch API, CSV import) are counted per arm and read by
                                           `genloop adcopy fit-ranker` — a creative's for the line
                                           it shows (feedback.py)
    check_publish_channel(...)             a channel name that exists (checked before work is done)

The constraint status is recomputed from the product stored with the line (params["constraints"]),
so what a page shows is what the checker says today, not a flag written once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from genloop.apps.adcopy.constraints import violations
from genloop.apps.adcopy.products import product_from_json
from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, FeedbackEvent, Publication
from genloop.errors import GenloopError, NotFoundError
from genloop.generate.review import PUBLISHABLE
from genloop.publish import publish_content
from genloop.publish.channels.registry import check_arm, check_channel_name, check_content_id, get_channel
from genloop.workspace import Workspace

CHANNEL = "adcopy"
CREATIVES_CHANNEL = "adcopy-creatives"
PUBLISHABLE_CHANNELS = (CHANNEL, CREATIVES_CHANNEL)
"""Content of these channels may be published as arms: lines, and creatives (image + line)."""
MAX_LISTED = 500


@dataclass
class PublishedArm:
    publication_id: str
    channel: str
    arm: str | None
    reactions: dict[str, int] = field(default_factory=dict)
    """Feedback events by kind: impression, click, like, dislike, …"""


@dataclass
class StoredCandidate:
    content_item_id: str
    product_id: str
    text: str
    rank: int
    score: float
    model_version_id: str
    status: str
    created_at: datetime
    violations: list[str]
    """Empty: the line meets every constraint of its product (checked when listed)."""
    publications: list[PublishedArm]

    @property
    def satisfied(self) -> bool:
        return not self.violations


def _candidate(item: ContentItem, arms: list[PublishedArm]) -> StoredCandidate:
    condition, params = item.condition or {}, item.params or {}
    text = str(condition.get("line") or "")
    constraints = params.get("constraints")
    problems = [str(v) for v in violations(text, product_from_json(constraints))] if constraints else []
    return StoredCandidate(
        content_item_id=item.id,
        product_id=str(condition.get("product") or ""),
        text=text,
        rank=int(condition.get("rank") or 0),
        score=float(condition.get("score") or 0.0),
        model_version_id=item.model_version_id,
        status=item.status,
        created_at=item.created_at,
        violations=problems if constraints else ["no stored constraints to check against"],
        publications=arms,
    )


def _arms(catalog: Catalog, content_ids: list[str]) -> dict[str, list[PublishedArm]]:
    if not content_ids:
        return {}
    arms: dict[str, list[PublishedArm]] = {}
    by_id: dict[str, PublishedArm] = {}
    with catalog.session() as session:
        rows = session.execute(
            select(Publication.id, Publication.content_item_id, Publication.channel, Publication.arm)
            .where(Publication.content_item_id.in_(content_ids))
            .order_by(Publication.published_at)
        ).all()
        for publication_id, content_id, channel, arm in rows:
            by_id[publication_id] = PublishedArm(publication_id, channel, arm)
            arms.setdefault(content_id, []).append(by_id[publication_id])
        if by_id:
            counts = session.execute(
                select(FeedbackEvent.publication_id, FeedbackEvent.kind, func.count())
                .where(FeedbackEvent.publication_id.in_(list(by_id)))
                .group_by(FeedbackEvent.publication_id, FeedbackEvent.kind)
            ).all()
            for publication_id, kind, count in counts:
                by_id[publication_id].reactions[kind] = int(count)
    return arms


def list_candidates(catalog: Catalog, product_id: str, *, limit: int = 100) -> list[StoredCandidate]:
    """A product's stored candidates: the newest generation first, best rank first within it."""
    with catalog.session() as session:
        items = list(
            session.scalars(
                select(ContentItem)
                .where(ContentItem.channel == CHANNEL)
                .where(ContentItem.condition["product"].as_string() == product_id)
                .order_by(ContentItem.created_at.desc())
                .limit(min(limit, MAX_LISTED))
            )
        )
        for item in items:
            session.expunge(item)
    arms = _arms(catalog, [item.id for item in items])
    candidates = [_candidate(item, arms.get(item.id, [])) for item in items]
    newest: dict[str, datetime] = {}
    for candidate in candidates:
        version = candidate.model_version_id
        newest[version] = max(newest.get(version, candidate.created_at), candidate.created_at)
    candidates.sort(key=lambda c: (-newest[c.model_version_id].timestamp(), c.rank or 10**6, c.text))
    return candidates


def list_products(catalog: Catalog) -> Counter[str]:
    """Product id → stored candidates, for every product with at least one."""
    product = ContentItem.condition["product"].as_string()
    with catalog.session() as session:
        rows = session.execute(
            select(product, func.count()).where(ContentItem.channel == CHANNEL).group_by(product)
        ).all()
    return Counter({str(pid): int(count) for pid, count in rows if pid})


def check_publish_channel(workspace: Workspace, channel: str) -> str:
    """`channel` if it is a well-formed name of a channel this workspace has, else a GenloopError."""
    check_channel_name(channel)
    get_channel(channel, workspace=workspace, config=workspace.config)
    return channel


def publish_candidates(
    workspace: Workspace, catalog: Catalog, choices: Sequence[tuple[str, str | None]], *, channel: str
) -> list[tuple[str, str, str | None]]:
    """Publish each (content item id, arm) on `channel`; [(content id, publication id, arm)].

    An id may name a stored line (channel "adcopy") or a creative (channel "adcopy-creatives").
    Every id is checked before anything is published: an unknown id or one that is neither is a
    NotFoundError, a bad arm or channel name a GenloopError, and then nothing is published.
    Publishing is idempotent per item and channel: the arm of the first publication stays, and
    is the arm returned."""
    if not choices:
        raise GenloopError(
            "choose at least one candidate to publish", hint="pick lines from the candidate list"
        )
    check_channel_name(channel)
    ids = [check_content_id(content_id) for content_id, _ in choices]
    arms = [check_arm(arm) for _, arm in choices]
    if len(set(ids)) != len(ids):
        raise GenloopError("a candidate is listed twice", hint="publish each line once, with one arm")
    with catalog.session() as session:
        found = dict(
            (item_id, (item_channel, status))
            for item_id, item_channel, status in session.execute(
                select(ContentItem.id, ContentItem.channel, ContentItem.status).where(ContentItem.id.in_(ids))
            )
        )
    missing = [i for i in ids if i not in found or found[i][0] not in PUBLISHABLE_CHANNELS]
    if missing:
        raise NotFoundError(
            f"no ad-copy candidate {', '.join(missing)} (neither a stored line nor a creative)",
            hint="list a product's candidates first: GET /api/v1/adcopy/products/{product_id}/candidates; "
            "creatives: genloop adcopy creatives PRODUCTS --json",
        )
    held = {content_id: found[content_id][1] for content_id in ids if found[content_id][1] not in PUBLISHABLE}
    if held:
        raise GenloopError(
            "not publishable: "
            + ", ".join(f"{content_id} is {status}" for content_id, status in held.items()),
            hint="a reviewer must approve them first: genloop review approve ID",
        )
    check_publish_channel(workspace, channel)  # an unknown channel: refused now
    published = []
    for content_id, arm in zip(ids, arms, strict=True):
        outcome = publish_content(
            catalog, [content_id], channel, workspace=workspace, config=workspace.config, arm=arm
        )
        if outcome.held:
            raise GenloopError(
                f"candidate {content_id} is {outcome.held[content_id]}: it cannot be published",
                hint=f"a reviewer must approve it first: genloop review approve {content_id}",
            )
        published.append((content_id, outcome.publications[0], arm))
    with catalog.session() as session:  # an item published before keeps its first arm: report that one
        stored = dict(
            session.execute(
                select(Publication.id, Publication.arm).where(
                    Publication.id.in_([p for _, p, _ in published])
                )
            ).all()
        )
    return [
        (content_id, publication_id, stored.get(publication_id, arm))
        for content_id, publication_id, arm in published
    ]


def candidate_json(candidate: StoredCandidate) -> dict[str, Any]:
    return {
        "content_item_id": candidate.content_item_id,
        "product_id": candidate.product_id,
        "text": candidate.text,
        "rank": candidate.rank,
        "score": candidate.score,
        "model_version_id": candidate.model_version_id,
        "status": candidate.status,
        "created_at": candidate.created_at,
        "satisfied": candidate.satisfied,
        "violations": candidate.violations,
        "publications": [
            {"id": p.publication_id, "channel": p.channel, "arm": p.arm, "reactions": p.reactions}
            for p in candidate.publications
        ],
    }
