"""The worker: a process that takes jobs from the catalog's queue and runs them, one at a time.

    genloop worker                      # until Ctrl-C / SIGTERM
    genloop worker --once               # one job (if any is queued), then exit
    spawn_workers(workspace, 2)         # what `genloop serve` can call to start N beside the server

Each loop: requeue jobs whose worker died (heartbeat older than `stale_after`), claim the
oldest queued job, run its handler with a heartbeat thread beside it, store the result or
the error. Stopping a worker (SIGTERM, Ctrl-C) puts its running job back in the queue; a
worker killed outright leaves it to the next worker's stale sweep. Any number of workers,
on any machines that reach the catalog, can run at once.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from genloop.catalog import Catalog, open_catalog
from genloop.errors import GenloopError
from genloop.jobs import queue
from genloop.jobs.context import JobCancelled, JobContext, JobLost
from genloop.jobs.handlers import HANDLERS
from genloop.workspace import Workspace

log = logging.getLogger("genloop.jobs")

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 60.0
"""A running job whose heartbeat is older than this is requeued (12 missed heartbeats)."""


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class _Heartbeat(threading.Thread):
    """Touches the job's heartbeat every `interval` seconds and tells the context what it saw."""

    def __init__(self, ctx: JobContext, interval: float) -> None:
        super().__init__(name=f"heartbeat-{ctx.job.id[:8]}", daemon=True)
        self.ctx, self.interval = ctx, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.ctx.observe(queue.heartbeat(self.ctx.catalog, self.ctx.job.id, self.ctx.worker))
            except Exception as exc:  # a catalog hiccup must not kill the job; the next beat retries
                log.warning("heartbeat of job %s failed: %s", self.ctx.job.id, exc)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval + 5)


@dataclass
class Worker:
    workspace: Workspace
    kinds: Sequence[str] | None = None
    """Only these job kinds (None: every kind)."""
    name: str = field(default_factory=default_worker_name)
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    stale_after: float = STALE_AFTER_SECONDS

    def __post_init__(self) -> None:
        for kind in self.kinds or ():
            if kind not in queue.JOB_KINDS:
                raise GenloopError(f"unknown job kind {kind!r}", hint=f"kinds: {', '.join(queue.JOB_KINDS)}")
        self.catalog: Catalog = open_catalog(self.workspace.database_url)

    def run_once(self) -> queue.JobView | None:
        """Run the oldest queued job to its end; the finished job, or None when none was queued."""
        queue.requeue_stale(self.catalog, stale_after=self.stale_after)
        job = queue.claim(self.catalog, self.name, self.kinds)
        if job is None:
            return None
        return self.run_claimed(job)

    def run_claimed(self, job: queue.JobView) -> queue.JobView:
        """Run a job this worker has claimed (`queue.claim(catalog, worker.name)`) to its end."""
        log.info("worker %s runs job %s (%s)", self.name, job.id, job.kind)
        ctx = JobContext(self.workspace, self.catalog, job, self.name)
        beat = _Heartbeat(ctx, self.heartbeat_seconds)
        beat.start()
        try:
            self._execute(ctx)
        except BaseException:  # stopped from outside (SIGTERM, Ctrl-C): give the job back
            queue.release(self.catalog, job.id, self.name, f"requeued: worker {self.name} stopped")
            raise
        finally:
            beat.stop()
        return queue.get(self.catalog, job.id)

    def _execute(self, ctx: JobContext) -> None:
        job, catalog = ctx.job, self.catalog
        try:
            result = HANDLERS[job.kind](ctx)
            json.dumps(result, allow_nan=False)  # a result the catalog cannot store fails the job here
        except JobCancelled:
            done = queue.get(catalog, job.id)
            queue.mark_cancelled(catalog, job.id, self.name, f"cancelled at {done.progress:.0%}")
        except JobLost as exc:
            log.warning("%s", exc)
        except GenloopError as exc:
            queue.fail(catalog, job.id, self.name, str(exc))
        except Exception as exc:  # a bug in a handler: keep the worker alive, say what broke
            log.exception("job %s (%s) failed", job.id, job.kind)
            queue.fail(catalog, job.id, self.name, f"{type(exc).__name__}: {exc} (see the worker's log)")
        else:
            if not queue.finish(catalog, job.id, self.name, result):
                log.warning("job %s finished but was no longer held by %s", job.id, self.name)

    def run(self, *, poll_seconds: float = 1.0, stop: threading.Event | None = None) -> int:
        """Run jobs until `stop` is set; the number run. Sleeps `poll_seconds` when the queue is empty."""
        stop = stop or threading.Event()
        ran = 0
        while not stop.is_set():
            try:
                job = self.run_once()
            except Exception as exc:  # the catalog is unreachable for a while: wait, then retry
                log.warning("worker %s: %s", self.name, exc)
                job = None
            if job is None:
                stop.wait(poll_seconds)
            else:
                ran += 1
        return ran


def run_once(workspace: Workspace, *, kinds: Sequence[str] | None = None) -> queue.JobView | None:
    """Run one queued job in this process (tests, `genloop worker --once`)."""
    return Worker(workspace, kinds=kinds).run_once()


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def serve_jobs(root: str, kinds: Sequence[str] | None, poll_seconds: float) -> None:
    """A worker process's main: run jobs of the workspace at `root` until SIGTERM."""
    _stop_on_sigterm()
    worker = Worker(Workspace(Path(root)), kinds=kinds)
    log.info("worker %s started (kinds: %s)", worker.name, ", ".join(kinds or queue.JOB_KINDS))
    try:
        worker.run(poll_seconds=poll_seconds)
    except (KeyboardInterrupt, SystemExit):
        log.info("worker %s stopped", worker.name)


def spawn_workers(
    workspace: Workspace, n: int, *, kinds: Sequence[str] | None = None, poll_seconds: float = 1.0
) -> list[BaseProcess]:
    """Start `n` worker processes (spawned: no state shared with the caller); stop them with terminate().

    They read the catalog URL from the environment like the caller (GENLOOP_DATABASE_URL).
    """
    if n < 0:
        raise GenloopError(f"the number of workers must be ≥ 0 (got {n})")
    context = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    for index in range(n):
        process = context.Process(
            target=serve_jobs,
            args=(str(workspace.root), list(kinds) if kinds else None, poll_seconds),
            name=f"genloop-worker-{index}",
        )
        process.start()
        processes.append(process)
    return processes


def stop_workers(processes: Sequence[BaseProcess], *, timeout: float = 30.0) -> None:
    """SIGTERM each (its running job goes back to the queue), then wait; kill what does not stop."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.1))
        if process.is_alive():
            process.kill()
            process.join()
