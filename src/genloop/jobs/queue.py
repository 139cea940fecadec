"""The job queue, kept in the catalog's `jobs` table so every server and worker process shares it.

    enqueue ──► queued ──claim──► running ──finish──► done
                  │                  │ └────fail────► failed
                  │                  ├──cancel──► cancelling ──(handler stops)──► cancelled
                  └──cancel──► cancelled
                  ▲                  │
                  └──requeue_stale───┘   (heartbeat older than the timeout: the worker died)

Every transition is ONE conditional UPDATE (`… WHERE id = :id AND status = 'queued'`) whose
rowcount says whether this process made it. Two workers racing for a job both issue the
UPDATE; the database serialises them (SQLite: one writer at a time; PostgreSQL: the second
UPDATE waits for the first's row lock, then re-checks the WHERE and matches nothing), so
exactly one sees rowcount 1 and runs the job. No process holds queue state in memory.

A worker's calls after it lost a job (requeued because it stalled, or cancelled) match no
row and change nothing: a stale worker can never overwrite what another wrote.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult

from genloop.catalog import Catalog
from genloop.catalog.models import Job, utcnow
from genloop.errors import GenloopError, NotFoundError
from genloop.feedback.events import as_utc

JOB_KINDS = ("generate", "evaluate", "train", "deliver-webhooks", "adcopy-generate")
STATUSES = ("queued", "running", "cancelling", "done", "failed", "cancelled")
ACTIVE = ("running", "cancelling")
FINISHED = frozenset({"done", "failed", "cancelled"})
MAX_PARAMS_BYTES = 64 * 1024
PARAMS_BYTES_BY_KIND = {"adcopy-generate": 512 * 1024}
"""Kinds whose params carry their input (an ad-copy job: its whole product table) may be bigger."""
MAX_REQUEUES = 3
"""A job whose worker died this many times is failed, not requeued again (it probably kills workers)."""
MAX_MESSAGE = 512
MAX_ERROR = 8192
LIST_HINT = "`genloop worker --help`; GET /api/v1/jobs lists the jobs"


class JobStateError(GenloopError):
    """The job is not in a state that allows this (cancelling a finished job, ...)."""


@dataclass(frozen=True)
class JobView:
    """A job as callers see it (no live ORM object leaves this module)."""

    id: str
    kind: str
    status: str
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    progress: float
    message: str | None
    created_by: str | None
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def of(cls, row: Job) -> JobView:
        def utc(moment: datetime | None) -> datetime | None:
            return None if moment is None else as_utc(moment)

        return cls(
            id=row.id,
            kind=row.kind,
            status=row.status,
            params=dict(row.params or {}),
            result=None if row.result is None else dict(row.result),
            error=row.error,
            progress=float(row.progress or 0.0),
            message=row.message,
            created_by=row.created_by,
            worker=row.worker,
            created_at=as_utc(row.created_at),
            started_at=utc(row.started_at),
            heartbeat_at=utc(row.heartbeat_at),
            finished_at=utc(row.finished_at),
        )


def _check_kind(kind: str) -> str:
    if kind not in JOB_KINDS:
        raise GenloopError(f"unknown job kind {kind!r}", hint=f"job kinds: {', '.join(JOB_KINDS)}")
    return kind


def _changed(result: Any) -> int:
    """The rowcount of an UPDATE (what tells this process whether its transition happened)."""
    return int(cast(CursorResult[Any], result).rowcount)


def enqueue(catalog: Catalog, kind: str, params: dict[str, Any], *, created_by: str | None) -> str:
    """Queue a job of `kind` with JSON `params`; its id (32 hex characters)."""
    _check_kind(kind)
    try:
        size = len(json.dumps(params, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except (TypeError, ValueError) as exc:
        raise GenloopError(f"job parameters must be plain JSON: {exc}") from None
    limit = PARAMS_BYTES_BY_KIND.get(kind, MAX_PARAMS_BYTES)
    if size > limit:
        raise GenloopError(f"job parameters are {size:,} bytes; at most {limit:,} are accepted")
    job_id = uuid.uuid4().hex
    with catalog.session() as session:
        session.add(
            Job(
                id=job_id,
                kind=kind,
                status="queued",
                params=params,
                progress=0.0,
                created_by=created_by,
                created_at=utcnow(),
            )
        )
    return job_id


def get(catalog: Catalog, job_id: str) -> JobView:
    with catalog.session() as session:
        row = session.get(Job, job_id)
        if row is None:
            raise NotFoundError(f"no job {job_id!r}", hint=LIST_HINT)
        return JobView.of(row)


def list_jobs(
    catalog: Catalog,
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[JobView], bool]:
    """Jobs, newest first (of `status` / `kind` when given); and whether more follow."""
    if status is not None and status not in STATUSES:
        raise GenloopError(f"unknown job status {status!r}", hint=f"statuses: {', '.join(STATUSES)}")
    if kind is not None:
        _check_kind(kind)
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1).offset(offset)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    with catalog.session() as session:
        rows = [JobView.of(row) for row in session.scalars(query)]
    return rows[:limit], len(rows) > limit


def claim(catalog: Catalog, worker: str, kinds: Sequence[str] | None = None) -> JobView | None:
    """Take the oldest queued job (of `kinds`, when given) for `worker`; None when there is none.

    Reads a few of the oldest candidates, then tries each with the conditional UPDATE; a
    candidate another worker took first matches no row (rowcount 0) and the next is tried.
    """
    for kind in kinds or ():
        _check_kind(kind)
    while True:
        candidates = select(Job.id).where(Job.status == "queued")
        if kinds:
            candidates = candidates.where(Job.kind.in_(list(kinds)))
        with catalog.session() as session:
            ids = list(session.scalars(candidates.order_by(Job.created_at, Job.id).limit(8)))
        if not ids:
            return None
        for job_id in ids:
            now = utcnow()
            with catalog.session() as session:
                taken = _changed(
                    session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.status == "queued")
                        .values(status="running", worker=worker[:128], started_at=now, heartbeat_at=now)
                    )
                )
            if taken == 1:
                return get(catalog, job_id)


def heartbeat(catalog: Catalog, job_id: str, worker: str) -> str | None:
    """Say `worker` is alive and still on the job; the job's status (None: the job is no longer ours)."""
    with catalog.session() as session:
        changed = _changed(
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status.in_(ACTIVE))
                .values(heartbeat_at=utcnow())
            )
        )
        if changed == 0:
            return None
        return session.scalar(select(Job.status).where(Job.id == job_id))


def report_progress(
    catalog: Catalog, job_id: str, worker: str, fraction: float, message: str | None = None
) -> str | None:
    """Store progress (clamped to 0..1) and a short message; the job's status, like `heartbeat`."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    values: dict[str, Any] = {"progress": fraction, "heartbeat_at": utcnow()}
    if message is not None:
        values["message"] = message[:MAX_MESSAGE]
    with catalog.session() as session:
        changed = _changed(
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status.in_(ACTIVE))
                .values(**values)
            )
        )
        if changed == 0:
            return None
        return session.scalar(select(Job.status).where(Job.id == job_id))


def _end(catalog: Catalog, job_id: str, worker: str, from_statuses: Sequence[str], **values: Any) -> bool:
    with catalog.session() as session:
        return (
            _changed(
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.worker == worker, Job.status.in_(list(from_statuses)))
                    .values(finished_at=utcnow(), heartbeat_at=utcnow(), **values)
                )
            )
            == 1
        )


def finish(catalog: Catalog, job_id: str, worker: str, result: dict[str, Any]) -> bool:
    """Mark the job done with `result`; False when it was no longer this worker's (nothing changed).

    A job whose cancellation was asked for but which finished anyway is done: its work exists.
    """
    return _end(catalog, job_id, worker, ACTIVE, status="done", result=result, progress=1.0, message="done")


def fail(catalog: Catalog, job_id: str, worker: str, error: str) -> bool:
    """Mark the job failed with `error` (what went wrong and what to do)."""
    return _end(catalog, job_id, worker, ACTIVE, status="failed", error=error[:MAX_ERROR])


def mark_cancelled(catalog: Catalog, job_id: str, worker: str, message: str = "cancelled") -> bool:
    """The handler stopped because cancellation was asked for."""
    return _end(catalog, job_id, worker, ACTIVE, status="cancelled", message=message[:MAX_MESSAGE])


def release(catalog: Catalog, job_id: str, worker: str, message: str) -> bool:
    """Put a job this worker holds back in the queue (the worker is stopping before it finished)."""
    with catalog.session() as session:
        changed = _changed(
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
                .values(status="queued", worker=None, started_at=None, heartbeat_at=None, message=message)
            )
        )
    if changed == 0:  # it was being cancelled: stopping the worker completes that
        mark_cancelled(catalog, job_id, worker, "cancelled (the worker stopped)")
    return changed == 1


def cancel(catalog: Catalog, job_id: str) -> JobView:
    """Cancel a job: a queued one at once, a running one at its handler's next check (`cancelling`)."""
    now = utcnow()
    with catalog.session() as session:
        queued = _changed(
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued")
                .values(status="cancelled", finished_at=now, message="cancelled before it started")
            )
        )
        if not queued:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "running")
                .values(status="cancelling", message="cancellation asked for; stopping at the next item")
            )
    job = get(catalog, job_id)
    if job.status in ("done", "failed"):
        raise JobStateError(
            f"job {job_id} is already {job.status}; there is nothing to cancel",
            hint="only queued and running jobs can be cancelled",
        )
    return job


def requeue_stale(catalog: Catalog, *, stale_after: float) -> list[str]:
    """Requeue running jobs whose heartbeat is older than `stale_after` seconds (their worker died).

    A job requeued `MAX_REQUEUES` times is failed instead; a stale job being cancelled is
    cancelled. Each move is conditional on the heartbeat read, so two workers sweeping at
    once move a job only once. Returns the ids requeued.
    """
    cutoff = utcnow() - timedelta(seconds=stale_after)
    with catalog.session() as session:
        stale = session.execute(
            select(Job.id, Job.status, Job.worker, Job.heartbeat_at, Job.result).where(
                Job.status.in_(ACTIVE), Job.heartbeat_at < cutoff
            )
        ).all()
    requeued = []
    for job_id, status, worker, beat, result in stale:
        requeues = int((result or {}).get("requeues", 0)) + 1
        died = f"worker {worker} stopped sending heartbeats (last {as_utc(beat).isoformat()})"
        if status == "cancelling":
            values: dict[str, Any] = {"status": "cancelled", "finished_at": utcnow(), "message": died}
        elif requeues > MAX_REQUEUES:
            values = {
                "status": "failed",
                "finished_at": utcnow(),
                "error": f"{died}; its worker died {requeues} times running it, so it is not retried",
            }
        else:
            values = {
                "status": "queued",
                "worker": None,
                "started_at": None,
                "heartbeat_at": None,
                "result": {"requeues": requeues},
                "message": f"requeued: {died}",
            }
        with catalog.session() as session:
            moved = _changed(
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == status, Job.heartbeat_at == beat)
                    .values(**values)
                )
            )
        if moved and values["status"] == "queued":
            requeued.append(job_id)
    return requeued
