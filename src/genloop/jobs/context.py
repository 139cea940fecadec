"""What a job handler gets: the workspace, the catalog, its parameters, and a way to report back.

    def handle(ctx: JobContext) -> dict:       # the job's result (plain JSON)
        for i, chunk in enumerate(chunks):
            ctx.check_cancelled()                # raises JobCancelled once someone cancelled it
            ...
            ctx.progress((i + 1) / len(chunks), f"{i + 1} of {len(chunks)} chunks")
        return {"made": ...}

Cancellation is cooperative: a handler checks between items, so an item is either
finished or not started when the job stops. The worker's heartbeat thread also learns
about a cancellation, so `check_cancelled` needs no catalog round trip of its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from genloop.catalog import Catalog
from genloop.jobs import queue
from genloop.workspace import Workspace


class JobCancelled(Exception):
    """Raised by `JobContext.check_cancelled` when the job's cancellation was asked for."""


class JobLost(Exception):
    """The job is no longer this worker's (requeued after a stall, or removed); stop quietly."""


@dataclass
class JobContext:
    workspace: Workspace
    catalog: Catalog
    job: queue.JobView
    worker: str
    _cancel_requested: threading.Event = field(default_factory=threading.Event)
    _lost: threading.Event = field(default_factory=threading.Event)

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def observe(self, status: str | None) -> None:
        """Take in the status the catalog returned (from a heartbeat or a progress update)."""
        if status is None:
            self._lost.set()
        elif status == "cancelling":
            self._cancel_requested.set()

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Store progress (0..1) and a short message that GET /jobs/{id} and its event stream show."""
        self.observe(queue.report_progress(self.catalog, self.job.id, self.worker, fraction, message))

    def cancel_requested(self) -> bool:
        return self._cancel_requested.is_set()

    def check_cancelled(self) -> None:
        """Raise JobCancelled (or JobLost) when the job must stop; call it between items."""
        if self._lost.is_set():
            raise JobLost(f"job {self.job.id} is no longer held by worker {self.worker}")
        if self._cancel_requested.is_set():
            raise JobCancelled(f"job {self.job.id} was cancelled")
