"""The job queue on real catalogs (SQLite and PostgreSQL), including two worker processes racing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from genloop.catalog import Catalog
from genloop.catalog.models import Job, utcnow
from genloop.errors import GenloopError, NotFoundError
from genloop.jobs import queue
from genloop.jobs.context import JobCancelled, JobContext
from genloop.workspace import Workspace


def job_count(catalog: Catalog) -> int:
    with catalog.session() as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


def test_lifecycle_oldest_first(catalog: Catalog) -> None:
    first = queue.enqueue(catalog, "generate", {"model": "a"}, created_by="key1")
    second = queue.enqueue(catalog, "evaluate", {"model": "b"}, created_by="key1")
    assert queue.get(catalog, first).status == "queued"

    claimed = queue.claim(catalog, "w1")
    assert claimed is not None and claimed.id == first
    assert (claimed.status, claimed.worker) == ("running", "w1")
    assert claimed.started_at is not None and claimed.heartbeat_at is not None
    assert queue.report_progress(catalog, first, "w1", 0.4, "4 of 10") == "running"
    assert queue.report_progress(catalog, first, "someone-else", 0.9) is None  # not theirs: no change
    job = queue.get(catalog, first)
    assert (job.progress, job.message) == (0.4, "4 of 10")

    assert queue.claim(catalog, "w2").id == second  # type: ignore[union-attr]
    assert queue.claim(catalog, "w3") is None

    assert queue.finish(catalog, first, "w1", {"content_ids": ["x"]})
    assert not queue.finish(catalog, first, "w1", {"again": True})  # already done: nothing changes
    done = queue.get(catalog, first)
    assert (done.status, done.progress, done.result) == ("done", 1.0, {"content_ids": ["x"]})
    assert done.finished and done.finished_at is not None

    assert queue.fail(catalog, second, "w2", "boom: what to do")
    assert queue.get(catalog, second).error == "boom: what to do"
    jobs, more = queue.list_jobs(catalog, status="done")
    assert [j.id for j in jobs] == [first] and not more


def test_claim_only_the_kinds_asked_for(catalog: Catalog) -> None:
    queue.enqueue(catalog, "train", {}, created_by=None)
    wanted = queue.enqueue(catalog, "generate", {"model": "m"}, created_by=None)
    claimed = queue.claim(catalog, "w", ["generate", "evaluate"])
    assert claimed is not None and claimed.id == wanted
    assert queue.claim(catalog, "w", ["generate"]) is None
    with pytest.raises(GenloopError, match="unknown job kind"):
        queue.claim(catalog, "w", ["mine-bitcoin"])


def test_bad_jobs_are_refused_and_nothing_is_stored(catalog: Catalog) -> None:
    with pytest.raises(GenloopError, match="unknown job kind 'nope'") as raised:
        queue.enqueue(catalog, "nope", {}, created_by=None)
    assert "generate" in (raised.value.hint or "")
    with pytest.raises(GenloopError, match="plain JSON"):
        queue.enqueue(catalog, "generate", {"x": float("nan")}, created_by=None)
    with pytest.raises(GenloopError, match="at most"):
        queue.enqueue(catalog, "generate", {"x": "y" * (queue.MAX_PARAMS_BYTES + 1)}, created_by=None)
    with pytest.raises(NotFoundError):
        queue.get(catalog, "' OR 1=1 --")
    with pytest.raises(GenloopError, match="unknown job status"):
        queue.list_jobs(catalog, status="done' OR '1'='1")
    assert job_count(catalog) == 0


def test_cancel_queued_at_once_running_cooperatively(catalog: Catalog, tmp_path: Path) -> None:
    waiting = queue.enqueue(catalog, "generate", {}, created_by=None)
    running = queue.enqueue(catalog, "generate", {}, created_by=None)
    assert queue.cancel(catalog, waiting).status == "cancelled"
    job = queue.claim(catalog, "w")
    assert job is not None and job.id == running  # a cancelled job is never claimed

    assert queue.cancel(catalog, running).status == "cancelling"
    assert queue.heartbeat(catalog, running, "w") == "cancelling"
    ctx = JobContext(Workspace(tmp_path), catalog, job, "w")
    ctx.progress(0.5, "half")  # the handler hears about the cancellation when it reports
    with pytest.raises(JobCancelled):
        ctx.check_cancelled()
    assert queue.mark_cancelled(catalog, running, "w")
    assert queue.get(catalog, running).status == "cancelled"
    assert queue.cancel(catalog, running).status == "cancelled"  # again: nothing to do, no error

    finished = queue.enqueue(catalog, "generate", {}, created_by=None)
    queue.claim(catalog, "w")
    queue.finish(catalog, finished, "w", {})
    with pytest.raises(queue.JobStateError, match="already done"):
        queue.cancel(catalog, finished)


def _silence(catalog: Catalog, job_id: str, seconds: float) -> None:
    with catalog.session() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_jobs_of_dead_workers_are_requeued_then_failed(catalog: Catalog) -> None:
    job_id = queue.enqueue(catalog, "generate", {}, created_by=None)
    for attempt in range(1, queue.MAX_REQUEUES + 1):
        assert queue.claim(catalog, f"ghost{attempt}") is not None
        assert queue.requeue_stale(catalog, stale_after=60) == []  # it is alive
        _silence(catalog, job_id, 120)
        assert queue.requeue_stale(catalog, stale_after=60) == [job_id]
        job = queue.get(catalog, job_id)
        assert (job.status, job.worker) == ("queued", None)
        assert f"ghost{attempt} stopped sending heartbeats" in (job.message or "")
        assert not queue.finish(catalog, job_id, f"ghost{attempt}", {})  # the dead worker lost it
    assert queue.claim(catalog, "ghost-last") is not None
    _silence(catalog, job_id, 120)
    assert queue.requeue_stale(catalog, stale_after=60) == []
    job = queue.get(catalog, job_id)
    assert job.status == "failed"
    assert f"died {queue.MAX_REQUEUES + 1} times" in (job.error or "")


def test_release_puts_a_job_back(catalog: Catalog) -> None:
    job_id = queue.enqueue(catalog, "train", {}, created_by=None)
    queue.claim(catalog, "w")
    assert queue.release(catalog, job_id, "w", "requeued: worker w stopped")
    assert queue.get(catalog, job_id).status == "queued"
    assert queue.claim(catalog, "w2").id == job_id  # type: ignore[union-attr]


CLAIMER = """
import json, pathlib, sys, time
from genloop.catalog import open_catalog
from genloop.jobs import queue

url, name, go = sys.argv[1:4]
catalog = open_catalog(url)
pathlib.Path(go + "." + name).touch()  # ready
while not pathlib.Path(go).exists():
    time.sleep(0.005)
taken = []
while (job := queue.claim(catalog, name)) is not None:
    taken.append(job.id)
    queue.finish(catalog, job.id, name, {"by": name})
print(json.dumps(taken))
"""


def test_two_worker_processes_never_run_the_same_job(catalog: Catalog, tmp_path: Path) -> None:
    ids = {queue.enqueue(catalog, "generate", {"n": i}, created_by=None) for i in range(80)}
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, catalog.url, name, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("p1", "p2")
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.{name}").exists() for name in ("p1", "p2")):
        assert time.monotonic() < deadline, "the claiming processes did not start"
        time.sleep(0.01)
    go.touch()  # both start claiming at the same moment
    taken: dict[str, list[str]] = {}
    for name, process in zip(("p1", "p2"), processes, strict=True):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        taken[name] = json.loads(out)
    print({name: len(claimed) for name, claimed in taken.items()})
    both = taken["p1"] + taken["p2"]
    assert len(both) == len(set(both)), "a job was claimed twice"
    assert set(both) == ids
    for name, claimed in taken.items():
        for job_id in claimed:
            job = queue.get(catalog, job_id)
            assert (job.status, job.worker, job.result) == ("done", name, {"by": name})
