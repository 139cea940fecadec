"""Feedback analytics: like-rate per model version, vote counts per publication.

Everything is one aggregate query (GROUP BY in the database), so the cost does not
grow with a Python loop over every event::

    like_rate = likes / (likes + dislikes)        (None while nobody has voted)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, func, select

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, FeedbackEvent, ModelVersion, Publication

_ID_CHUNK = 500  # bound parameters per IN (...) query; far below SQLite's and PostgreSQL's limits


@dataclass(frozen=True)
class ModelLikeRate:
    model_version_id: str
    name: str
    version: int
    publications: int
    likes: int
    dislikes: int

    @property
    def votes(self) -> int:
        return self.likes + self.dislikes

    @property
    def like_rate(self) -> float | None:
        return self.likes / self.votes if self.votes else None


def _count_kind(kind: str) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((FeedbackEvent.kind == kind, 1), else_=0)), 0)


def like_rate_by_model_version(catalog: Catalog) -> list[ModelLikeRate]:
    """Every model version with its published items and votes, by name then version."""
    likes = _count_kind("like")
    dislikes = _count_kind("dislike")
    query = (
        select(
            ModelVersion.id,
            ModelVersion.name,
            ModelVersion.version,
            func.count(func.distinct(Publication.id)),
            likes,
            dislikes,
        )
        .select_from(ModelVersion)
        .outerjoin(ContentItem, ContentItem.model_version_id == ModelVersion.id)
        .outerjoin(Publication, Publication.content_item_id == ContentItem.id)
        .outerjoin(
            FeedbackEvent,
            and_(
                FeedbackEvent.publication_id == Publication.id,
                FeedbackEvent.kind.in_(("like", "dislike")),
            ),
        )
        .group_by(ModelVersion.id, ModelVersion.name, ModelVersion.version)
        .order_by(ModelVersion.name, ModelVersion.version)
    )
    with catalog.session() as session:
        rows = session.execute(query).all()
    return [
        ModelLikeRate(
            model_version_id=row[0],
            name=row[1],
            version=row[2],
            publications=int(row[3]),
            likes=int(row[4]),
            dislikes=int(row[5]),
        )
        for row in rows
    ]


def counts_for_publications(catalog: Catalog, ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """`{publication_id: (likes, dislikes)}` for each id asked for (zeros when none)."""
    wanted = list(dict.fromkeys(ids))
    counts = dict.fromkeys(wanted, (0, 0))
    with catalog.session() as session:
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            query = (
                select(FeedbackEvent.publication_id, _count_kind("like"), _count_kind("dislike"))
                .where(FeedbackEvent.publication_id.in_(chunk))
                .group_by(FeedbackEvent.publication_id)
            )
            for publication_id, like_count, dislike_count in session.execute(query):
                counts[publication_id] = (int(like_count), int(dislike_count))
    return counts
