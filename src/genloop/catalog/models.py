"""The catalog's tables (SQLAlchemy 2 declarative models).

The lineage chain is a chain of foreign keys::

    feedback_events → publications → content_items → model_versions → runs
        → run_datasets → dataset_versions → (parent dataset versions) → dataset_sources

Schema changes go through an Alembic migration in `migrations/versions/`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    stage: Mapped[str] = mapped_column(String(32))  # collect | clean | annotate | feedback
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("dataset_versions.id"))
    path: Mapped[str] = mapped_column(String(1024))
    record_count: Mapped[int] = mapped_column(Integer)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    sources: Mapped[list[DatasetSource]] = relationship(
        back_populates="dataset_version", cascade="all, delete-orphan"
    )


class DatasetSource(Base):
    """How many records of a dataset version came from which source, under which license."""

    __tablename__ = "dataset_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    source: Mapped[str] = mapped_column(String(256))
    license: Mapped[str] = mapped_column(String(128))
    record_count: Mapped[int] = mapped_column(Integer)

    dataset_version: Mapped[DatasetVersion] = relationship(back_populates="sources")


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), index=True)
    family: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | completed | failed
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    parent_model_version_id: Mapped[str | None] = mapped_column(String(160))
    path: Mapped[str] = mapped_column(String(1024))
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    datasets: Mapped[list[RunDataset]] = relationship(cascade="all, delete-orphan")


class RunDataset(Base):
    """A dataset version a run trained on, with its role (`train`, `feedback`)."""

    __tablename__ = "run_datasets"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    dataset_version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), default="train")


class RunMetric(Base):
    __tablename__ = "run_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[str] = mapped_column(String(160), primary_key=True)  # f"{name}-v{version}"
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    family: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("model_versions.id"))
    path: Mapped[str] = mapped_column(String(1024))
    feedback_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set by `genloop models archive`: hidden from `ls`, never promoted (still loadable for lineage)."""

    run: Mapped[Run] = relationship()


class ModelAlias(Base):
    """`champion`, `challenger`, ...: a movable name for one version of a model."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class AliasEvent(Base):
    """One move of an alias (`genloop models promote / rollback`, training): the alias history.

    `from_version_id` is None for the alias's first version. `action` is promote | rollback |
    register (a training run set it) | set (Python API) | migrated (present before 0003).
    `gates` holds the gate results checked for the move (empty when none applied).
    """

    __tablename__ = "model_alias_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    from_version_id: Mapped[str | None] = mapped_column(ForeignKey("model_versions.id"))
    to_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(2048))
    gates: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Evaluation(Base):
    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"), index=True)
    dataset_version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


SHOWS_KEY = "shows"
"""condition[SHOWS_KEY] of a composed content item (an ad creative: a generated image with a
generated line on it) is the id of the content item it displays; reactions to the composed item
also count for that one (the ad-copy ranker's rows, the improve stage's preferences)."""


class ContentItem(Base):
    __tablename__ = "content_items"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024))
    condition: Mapped[dict[str, Any]] = mapped_column(JSON)
    """What the model was asked for (label, prompt, …); SHOWS_KEY when it displays another item."""
    seed: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)  # the AI-generated labels written into the file
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    """Hash of the generation request that made it (items of one request share it)."""
    channel: Mapped[str] = mapped_column(String(64), default="gallery", server_default="gallery")
    """Whose channel policy (post-processing, safety, review) the item was finished under."""
    status: Mapped[str] = mapped_column(String(16), default="ready", server_default="ready", index=True)
    """ready | review (a check failed, or the channel reviews everything) | approved | rejected |
    published. Only ready and approved items may be published."""
    verdicts: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    """Every safety verdict, passed or not, with its reason (`Verdict.to_json()`)."""
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    """Seconds spent per step: sample, postprocess, safety, label."""
    review_log: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    """Status transitions, oldest first: {"from", "to", "actor", "note", "at"}."""

    model_version: Mapped[ModelVersion] = relationship()


class Publication(Base):
    __tablename__ = "publications"
    __table_args__ = (UniqueConstraint("content_item_id", "channel"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_item_id: Mapped[str] = mapped_column(ForeignKey("content_items.id"), index=True)
    channel: Mapped[str] = mapped_column(String(64))
    arm: Mapped[str | None] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    path: Mapped[str | None] = mapped_column(String(1024))
    """The published copy (GB 45438 propagator fields filled in), relative to the workspace."""

    content_item: Mapped[ContentItem] = relationship()


class FeedbackEvent(Base):
    __tablename__ = "feedback_events"
    __table_args__ = (
        # per-viewer rate limits count a viewer's recent events in SQL (no state in any one worker)
        Index("ix_feedback_events_viewer_time", "viewer_id", "created_at"),
        # de-duplication reads each viewer's latest event per item (feedback/batch.py, dedup.py);
        # without it SQLite read every event of the batch's items once a batch had more viewers
        # than items in it (migration 0008)
        Index("ix_feedback_events_viewer_publication", "viewer_id", "publication_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    publication_id: Mapped[str] = mapped_column(ForeignKey("publications.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # impression click like dislike rating edit comment flag
    value: Mapped[float | None] = mapped_column(Float)
    viewer_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    text: Mapped[str | None] = mapped_column(Text)
    """`edit`: the corrected text (training data); `comment` / `flag`: what the viewer wrote."""
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Where it came from when not a live viewer: {"import": file, "row": n}, a position, ..."""

    publication: Mapped[Publication] = relationship()


class AnnotationTask(Base):
    """One record of a dataset version waiting for (or done with) human labels."""

    __tablename__ = "annotation_tasks"
    __table_args__ = (UniqueConstraint("dataset_version_id", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    record_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)  # open | done
    suggested_label: Mapped[str | None] = mapped_column(String(256))
    suggested_confidence: Mapped[float | None] = mapped_column(Float)
    annotators_required: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    annotations: Mapped[list[Annotation]] = relationship(
        back_populates="task", cascade="all, delete-orphan", order_by="Annotation.id"
    )


class Annotation(Base):
    """One person's label for one task (one per annotator; relabelling replaces it)."""

    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("task_id", "annotator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("annotation_tasks.id"), index=True)
    annotator: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    task: Mapped[AnnotationTask] = relationship(back_populates="annotations")


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; the secret is shown once, when created."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    """Public id, also the first characters of the secret (`gl_<id>_<random>`), for display."""
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))  # admin | editor | reviewer | viewer
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """Heavy work (generate, train, evaluate, deliveries) run by worker processes, never the server.

    Workers claim a queued job with one conditional UPDATE (status queued → running), so two
    workers never run the same job; `heartbeat_at` lets a later worker requeue a job whose
    worker died.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    """queued | running | done | failed | cancelled"""
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    """0..1"""
    message: Mapped[str | None] = mapped_column(String(512))
    created_by: Mapped[str | None] = mapped_column(String(128))
    """The API key id (or `cli`) that queued it."""
    worker: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One POST owed to a webhook channel: retried with backoff, dead after N failures, replayable."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """Stable per (channel, publication, event): the receiver's idempotency key."""
    channel: Mapped[str] = mapped_column(String(64), index=True)
    publication_id: Mapped[str | None] = mapped_column(ForeignKey("publications.id"))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoopRound(Base):
    """One round of `genloop loop` for one model: the phase it reached and its numbers.

    Phases, in order: started → generated → published → feedback → decided → improved → done.
    A killed loop resumes at the phase after the last one recorded; every phase is idempotent
    (same seeds → same content ids; publishing and simulated feedback keyed per round).
    """

    __tablename__ = "loop_rounds"
    __table_args__ = (UniqueConstraint("model_name", "round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128), index=True)
    round: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16), default="started")
    champion_id: Mapped[str | None] = mapped_column(String(160))
    """The champion when the round began (arm `champion`)."""
    challenger_id: Mapped[str | None] = mapped_column(String(160))
    """The live challenger shown beside it this round (arm `challenger`), if any."""
    new_challenger_id: Mapped[str | None] = mapped_column(String(160))
    """The challenger this round's improvement made (shown from the next round when it passes the gates)."""
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Slots, items and publications per arm, feedback counts, like-rate, seconds per phase."""
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AllocationDecision(Base):
    """A decision between a champion and a challenger, with the numbers it was made on.

    action: promote | retire | continue (the bandit, publish/allocation.py), gate-blocked (the
    offline gates refused the challenger before it went live).
    """

    __tablename__ = "allocation_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128), index=True)
    round: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    champion_id: Mapped[str | None] = mapped_column(String(160))
    challenger_id: Mapped[str] = mapped_column(String(160))
    p_challenger_better: Mapped[float | None] = mapped_column(Float)
    numbers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SupportTicket(Base):
    """One customer query in the support agent queue (`apps/support/queue.py` says what and why).

    The pre-reply itself is a content item (modality text, model version `support-vN`) published
    on the private `support` channel; the agent's decision is a feedback event on that
    publication (accept → like, reject → dislike, edit → edit with the corrected text).
    Only the masked query is stored: the raw text may hold PII and is never written anywhere.
    """

    __tablename__ = "support_tickets"
    __table_args__ = (Index("ix_support_tickets_status", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    content_item_id: Mapped[str] = mapped_column(ForeignKey("content_items.id"), unique=True)
    publication_id: Mapped[str] = mapped_column(ForeignKey("publications.id"))
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    """queued | accepted | edited | rejected"""
    query_masked: Mapped[str] = mapped_column(Text)
    """The customer's query with every PII value replaced by its type ([PHONE], [EMAIL], ...)."""
    language: Mapped[str] = mapped_column(String(16))
    intent: Mapped[str] = mapped_column(String(128))
    intent_confidence: Mapped[float] = mapped_column(Float)
    slots: Mapped[list[Any]] = mapped_column(JSON)
    """Slots as shown to agents: PII slots carry their masked value only."""
    sources: Mapped[list[Any]] = mapped_column(JSON)
    reply_body: Mapped[str] = mapped_column(Text)
    reply_status: Mapped[str] = mapped_column(String(16))
    """The pre-reply's safety outcome: ready | review."""
    final_reply: Mapped[str | None] = mapped_column(Text)
    """accepted: the pre-reply's body; edited: the agent's corrected reply (PII masked)."""
    final_intent: Mapped[str | None] = mapped_column(String(128))
    """The intent the agent confirmed (accept / edit), training data for the intent model."""
    note: Mapped[str | None] = mapped_column(Text)
    feedback_event_id: Mapped[int | None] = mapped_column(ForeignKey("feedback_events.id"))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
