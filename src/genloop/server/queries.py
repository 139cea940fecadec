"""Read-side queries the API and the web pages share: published items, one content item, its file.

Content files are served only for catalogued content items, and only when the
stored path resolves inside the workspace's `.genloop/content/` folder, so no
request (and no tampered catalog row) can make the server read any other file.
A music item's MIDI and its rendered WAV share a name (`ID.mid`, `ID.wav`), so either
is found from the catalogued one.

Also here: the console's reads (dashboard counts, datasets, runs and their metrics, jobs)
and the feedback analytics it shows (like-rate and mean rating per group with Wilson
95 % intervals). Everything aggregates in SQL (GROUP BY), except per-condition
analytics, which folds per-item rows in Python because JSON columns do not group on
PostgreSQL.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, case, func, select

from genloop.catalog import Catalog
from genloop.catalog.models import (
    AliasEvent,
    ContentItem,
    DatasetVersion,
    Evaluation,
    FeedbackEvent,
    Job,
    ModelVersion,
    Publication,
    Run,
    RunMetric,
)
from genloop.errors import NotFoundError
from genloop.feedback.analytics import counts_for_publications, wilson_interval
from genloop.feedback.events import as_utc
from genloop.workspace import Workspace

CONTENT_DIRNAME = "content"
MEDIA_TYPES = {
    ".png": "image/png",
    ".webp": "image/webp",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".wav": "audio/wav",
    ".mid": "audio/midi",
    ".midi": "audio/midi",
}
PRIVATE_CHANNELS = ("support",)
"""Channels whose publications are for staff only (the support agent queue): never in the public
gallery, never visible to anonymous callers."""
MAX_CARD_TEXT_CHARS = 4000
"""A text card shows this much of the file; the gallery never reads a large file whole."""


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
    catalog: Catalog,
    *,
    limit: int,
    offset: int = 0,
    model_version_id: str | None = None,
    modality: str | None = None,
) -> tuple[list[PublishedItem], bool]:
    """Published items (of `modality`, if given), newest first, with vote counts; and whether more follow."""
    query = (
        select(Publication, ContentItem, ModelVersion)
        .join(ContentItem, Publication.content_item_id == ContentItem.id)
        .join(ModelVersion, ContentItem.model_version_id == ModelVersion.id)
        .where(Publication.channel.not_in(PRIVATE_CHANNELS))
        .order_by(Publication.published_at.desc(), Publication.id.desc())
        .limit(limit + 1)
        .offset(offset)
    )
    if model_version_id is not None:
        query = query.where(ModelVersion.id == model_version_id)
    if modality is not None:
        query = query.where(ContentItem.modality == modality)
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


def require_visible(catalog: Catalog, content_id: str, *, privileged: bool) -> None:
    """NotFoundError for an item that is not published, unless the caller may see those."""
    if privileged:
        return
    with catalog.session() as session:
        published = session.scalar(
            select(Publication.id)
            .where(Publication.content_item_id == content_id, Publication.channel.not_in(PRIVATE_CHANNELS))
            .limit(1)
        )
    if published is None:
        raise _content_not_found(content_id)


def content_file(
    workspace: Workspace, catalog: Catalog, content_id: str, extension: str | None = None
) -> tuple[Path, str]:
    """The file of a catalogued content item and its media type; NotFoundError otherwise.

    `extension` (".wav", ".mid") asks for the sibling of the catalogued file with that
    suffix: a music item's rendered audio next to its MIDI.
    """
    with catalog.session() as session:
        item = session.get(ContentItem, content_id)
        stored = item.path if item is not None else None
    if stored is None:
        raise _content_not_found(content_id)
    content_root = (workspace.state_dir / CONTENT_DIRNAME).resolve()
    path = workspace.artifact(stored).resolve()
    if extension is not None:
        path = path.with_suffix(extension.lower())
    media_type = MEDIA_TYPES.get(path.suffix.lower())
    if not path.is_relative_to(content_root) or media_type is None:
        raise NotFoundError(
            f"content item {content_id!r} has no servable {extension or ''} file".replace("  ", " "),
            hint=f"only images, text, WAV and MIDI inside {content_root} are served",
        )
    if not path.is_file():
        raise NotFoundError(
            f"the {extension + ' ' if extension else ''}file of content item {content_id!r} is missing",
            hint="run `genloop generate` again to recreate it",
        )
    return path, media_type


@dataclass(frozen=True)
class CardMedia:
    """What a gallery card shows for one item: the text, or which files exist to play/download."""

    text: str | None = None
    truncated: bool = False
    image: bool = False
    wav: bool = False
    midi: bool = False


def card_media(workspace: Workspace, catalog: Catalog, content_ids: list[str]) -> dict[str, CardMedia]:
    """`{content_id: CardMedia}`: text cards read at most MAX_CARD_TEXT_CHARS of their file."""
    wanted = list(dict.fromkeys(content_ids))
    if not wanted:
        return {}
    with catalog.session() as session:
        rows = session.execute(
            select(ContentItem.id, ContentItem.path).where(ContentItem.id.in_(wanted))
        ).all()
    content_root = (workspace.state_dir / CONTENT_DIRNAME).resolve()
    media: dict[str, CardMedia] = {}
    for content_id, stored in rows:
        path = workspace.artifact(stored).resolve()
        if not path.is_relative_to(content_root):
            media[content_id] = CardMedia()
            continue
        suffix = path.suffix.lower()
        text, truncated = None, False
        if suffix in (".txt", ".md") and path.is_file():
            with path.open(encoding="utf-8", errors="replace") as handle:
                text = handle.read(MAX_CARD_TEXT_CHARS + 1)
            text, truncated = text[:MAX_CARD_TEXT_CHARS], len(text) > MAX_CARD_TEXT_CHARS
        media[content_id] = CardMedia(
            text=text,
            truncated=truncated,
            image=suffix in (".png", ".webp", ".jpg", ".jpeg"),
            wav=path.with_suffix(".wav").is_file(),
            midi=path.with_suffix(".mid").is_file(),
        )
    return media


def _content_not_found(content_id: str) -> NotFoundError:
    return NotFoundError(
        f"content item {content_id!r} is not in the catalog",
        hint="content ids are listed by GET /api/v1/publications and shown in the gallery",
    )


# -- console: dashboard, datasets, runs, jobs ----------------------------------------------------


@dataclass(frozen=True)
class DashboardCounts:
    datasets: int
    runs: int
    models: int
    items_by_status: dict[str, int]
    publications: int
    feedback_last_24h: int


def dashboard_counts(catalog: Catalog, *, now: datetime | None = None) -> DashboardCounts:
    since = (now or datetime.now(UTC)) - timedelta(hours=24)
    with catalog.session() as session:

        def count(model: Any, *where: Any) -> int:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        statuses = session.execute(
            select(ContentItem.status, func.count()).group_by(ContentItem.status).order_by(ContentItem.status)
        ).all()
        return DashboardCounts(
            datasets=count(DatasetVersion),
            runs=count(Run),
            models=count(ModelVersion),
            items_by_status={status: int(n) for status, n in statuses},
            publications=count(Publication),
            feedback_last_24h=count(FeedbackEvent, FeedbackEvent.created_at >= since),
        )


@dataclass(frozen=True)
class JobRow:
    id: str
    kind: str
    status: str
    progress: float
    message: str | None
    error: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None


def _job_row(job: Job) -> JobRow:
    return JobRow(
        job.id,
        job.kind,
        job.status,
        float(job.progress or 0.0),
        job.message,
        job.error,
        dict(job.params or {}),
        dict(job.result) if job.result is not None else None,
        job.created_by,
        as_utc(job.created_at),
        as_utc(job.finished_at) if job.finished_at else None,
    )


def latest_jobs(catalog: Catalog, *, limit: int = 10, kind: str | None = None) -> list[JobRow]:
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(Job.kind == kind)
    with catalog.session() as session:
        return [_job_row(job) for job in session.scalars(query)]


def get_job(catalog: Catalog, job_id: str) -> JobRow:
    with catalog.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFoundError(
                f"job {job_id!r} is not in the catalog", hint="the dashboard lists recent jobs"
            )
        return _job_row(job)


@dataclass(frozen=True)
class DatasetRow:
    id: str
    name: str
    stage: str
    parent_id: str | None
    records: int
    created_at: datetime
    manifest: dict[str, Any]
    licenses: list[tuple[str, str, int]]
    """(source, license, records) per source."""


def list_datasets(catalog: Catalog, *, limit: int = 200) -> list[DatasetRow]:
    query = select(DatasetVersion).order_by(DatasetVersion.created_at.desc(), DatasetVersion.id).limit(limit)
    with catalog.session() as session:
        return [_dataset_row(row) for row in session.scalars(query)]


def get_dataset(catalog: Catalog, dataset_id: str) -> DatasetRow:
    with catalog.session() as session:
        row = session.get(DatasetVersion, dataset_id)
        if row is None:
            raise NotFoundError(
                f"dataset version {dataset_id!r} is not in the catalog", hint="`genloop data ls` lists them"
            )
        return _dataset_row(row)


def _dataset_row(row: DatasetVersion) -> DatasetRow:
    return DatasetRow(
        row.id,
        row.name,
        row.stage,
        row.parent_id,
        row.record_count,
        as_utc(row.created_at),
        dict(row.manifest or {}),
        [(s.source, s.license, s.record_count) for s in row.sources],
    )


def cleaning_steps(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's step report as rows: name, seen, kept, dropped (total) and dropped per reason."""
    steps = (manifest.get("report") or {}).get("steps") or []
    rows = []
    for step in steps:
        dropped = {str(k): int(v) for k, v in (step.get("dropped") or {}).items()}
        rows.append(
            {
                "name": str(step.get("name", "?")),
                "seen": int(step.get("seen", 0)),
                "kept": int(step.get("kept", 0)),
                "dropped": sum(dropped.values()),
                "reasons": dropped,
            }
        )
    return rows


@dataclass(frozen=True)
class RunRow:
    id: str
    model_name: str
    family: str
    status: str
    epochs_done: int
    steps_done: int
    started_at: datetime
    finished_at: datetime | None
    config: dict[str, Any]
    datasets: list[tuple[str, str]]
    """(dataset version id, role)."""


def _run_row(run: Run) -> RunRow:
    return RunRow(
        run.id,
        run.model_name,
        run.family,
        run.status,
        run.epochs_done,
        run.steps_done,
        as_utc(run.started_at),
        as_utc(run.finished_at) if run.finished_at else None,
        dict(run.config or {}),
        [(d.dataset_version_id, d.role) for d in run.datasets],
    )


def list_runs(catalog: Catalog, *, limit: int = 200) -> list[RunRow]:
    query = select(Run).order_by(Run.started_at.desc(), Run.id).limit(limit)
    with catalog.session() as session:
        return [_run_row(run) for run in session.scalars(query)]


def get_run(catalog: Catalog, run_id: str) -> RunRow:
    with catalog.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id!r} is not in the catalog", hint="the runs page lists them")
        return _run_row(run)


def run_metrics(catalog: Catalog, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """`{metric name: [(step, value), ...]}` in step order (non-finite values left out)."""
    query = (
        select(RunMetric.name, RunMetric.step, RunMetric.value)
        .where(RunMetric.run_id == run_id)
        .order_by(RunMetric.name, RunMetric.step, RunMetric.id)
    )
    series: dict[str, list[tuple[int, float]]] = {}
    with catalog.session() as session:
        for name, step, value in session.execute(query):
            if value is not None and math.isfinite(value):
                series.setdefault(name, []).append((int(step), float(value)))
    return series


@dataclass(frozen=True)
class ModelRow:
    """A model version for the console: its latest evaluation's metrics and its aliases."""

    id: str
    name: str
    version: int
    family: str
    run_id: str
    aliases: tuple[str, ...]
    archived: bool
    created_at: datetime
    metrics: dict[str, Any]
    evaluated_on: str | None


def latest_metrics(catalog: Catalog, version_ids: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """`{version id: (dataset version id, metrics)}` of each version's newest evaluation."""
    newest = (
        select(func.max(Evaluation.id))
        .where(Evaluation.model_version_id.in_(version_ids))
        .group_by(Evaluation.model_version_id)
    )
    with catalog.session() as session:
        rows = session.scalars(select(Evaluation).where(Evaluation.id.in_(newest))).all()
        return {row.model_version_id: (row.dataset_version_id, dict(row.metrics)) for row in rows}


def alias_events(catalog: Catalog, *, limit: int = 20) -> list[AliasEvent]:
    with catalog.session() as session:
        events = list(session.scalars(select(AliasEvent).order_by(AliasEvent.id.desc()).limit(limit)))
        session.expunge_all()
        return events


# -- analytics: like-rate and rating with Wilson intervals ---------------------------------------


@dataclass(frozen=True)
class FeedbackGroup:
    """Votes and ratings of one group (a model version, a condition, a channel, an A/B arm)."""

    key: str
    likes: int
    dislikes: int
    ratings: int
    rating_sum: float
    rating_sq_sum: float
    publications: int = 0

    @property
    def votes(self) -> int:
        return self.likes + self.dislikes

    @property
    def like_rate(self) -> float | None:
        return self.likes / self.votes if self.votes else None

    @property
    def like_interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.likes, self.votes)

    @property
    def mean_rating(self) -> float | None:
        return self.rating_sum / self.ratings if self.ratings else None

    @property
    def rating_interval(self) -> tuple[float, float] | None:
        """mean ± 1.96·s/√n (normal approximation; None below two ratings)."""
        if self.ratings < 2:
            return None
        mean = self.rating_sum / self.ratings
        variance = max(0.0, (self.rating_sq_sum - self.ratings * mean * mean) / (self.ratings - 1))
        half = 1.96 * math.sqrt(variance / self.ratings)
        return max(1.0, mean - half), min(5.0, mean + half)


GROUPINGS = ("model_version", "condition", "channel", "arm")


def _kind_count(kind: str) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((FeedbackEvent.kind == kind, 1), else_=0)), 0)


def _rating_sum(power: int) -> ColumnElement[float]:
    value = FeedbackEvent.value if power == 1 else FeedbackEvent.value * FeedbackEvent.value
    return func.coalesce(func.sum(case((FeedbackEvent.kind == "rating", value), else_=0.0)), 0.0)


def _rating_count() -> ColumnElement[int]:
    rated = (FeedbackEvent.kind == "rating") & FeedbackEvent.value.is_not(None)
    return func.coalesce(func.sum(case((rated, 1), else_=0)), 0)


def feedback_groups(catalog: Catalog, by: str) -> list[FeedbackGroup]:
    """Feedback per `by` (one of GROUPINGS), groups with publications but no feedback included."""
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; one of {', '.join(GROUPINGS)}")
    key: Any = {
        "model_version": ContentItem.model_version_id,
        "condition": ContentItem.id,  # folded per condition label below
        "channel": Publication.channel,
        "arm": func.coalesce(Publication.arm, "(none)"),
    }[by]
    query = (
        select(
            key,
            func.count(func.distinct(Publication.id)),
            _kind_count("like"),
            _kind_count("dislike"),
            _rating_count(),
            _rating_sum(1),
            _rating_sum(2),
        )
        .select_from(Publication)
        .join(ContentItem, Publication.content_item_id == ContentItem.id)
        .outerjoin(FeedbackEvent, FeedbackEvent.publication_id == Publication.id)
        .group_by(key)
    )
    with catalog.session() as session:
        rows = session.execute(query).all()
        labels: dict[str, str] = {}
        if by == "condition":
            ids = [row[0] for row in rows]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for item_id, condition in session.execute(
                    select(ContentItem.id, ContentItem.condition).where(ContentItem.id.in_(chunk))
                ):
                    labels[item_id] = _condition_key(condition)
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0.0, 0.0])
    for group, publications, likes, dislikes, ratings, rating_sum, rating_sq in rows:
        name = labels.get(group, "(none)") if by == "condition" else str(group)
        for index, value in enumerate((publications, likes, dislikes, ratings, rating_sum, rating_sq)):
            totals[name][index] += value or 0
    return [
        FeedbackGroup(
            key=name,
            publications=int(t[0]),
            likes=int(t[1]),
            dislikes=int(t[2]),
            ratings=int(t[3]),
            rating_sum=float(t[4]),
            rating_sq_sum=float(t[5]),
        )
        for name, t in sorted(totals.items())
    ]


def _condition_key(condition: dict[str, Any] | None) -> str:
    """The condition as a group name: its label, else its prompt, else '(none)'."""
    condition = condition or {}
    for field_name in ("label", "prompt"):
        if condition.get(field_name) is not None:
            return str(condition[field_name])[:80]
    return "(none)"


def like_rate_by_day(
    catalog: Catalog, *, days: int = 90, now: datetime | None = None
) -> dict[str, list[tuple[str, int, int]]]:
    """`{model version id: [(YYYY-MM-DD, likes, dislikes), ...]}` per day over the last `days`."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    day = func.date(FeedbackEvent.created_at)
    query = (
        select(ContentItem.model_version_id, day, _kind_count("like"), _kind_count("dislike"))
        .select_from(FeedbackEvent)
        .join(Publication, FeedbackEvent.publication_id == Publication.id)
        .join(ContentItem, Publication.content_item_id == ContentItem.id)
        .where(FeedbackEvent.kind.in_(("like", "dislike")), FeedbackEvent.created_at >= since)
        .group_by(ContentItem.model_version_id, day)
        .order_by(ContentItem.model_version_id, day)
    )
    series: dict[str, list[tuple[str, int, int]]] = {}
    with catalog.session() as session:
        for version_id, when, likes, dislikes in session.execute(query):
            series.setdefault(version_id, []).append((str(when)[:10], int(likes), int(dislikes)))
    return series
