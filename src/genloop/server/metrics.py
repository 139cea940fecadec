"""`GET /metrics`: Prometheus text format (version 0.0.4), written here without a client library.

Two kinds of series, chosen so several uvicorn workers (or machines) give a true picture:

* **catalog gauges**, computed by SQL at scrape time, identical whichever worker answers:
  content items by status, publications by channel, feedback events by kind, jobs by
  status, webhook deliveries by status;
* **per-process request metrics**: `genloop_http_requests_total` and the latency histogram
  `genloop_http_request_duration_seconds`, labelled by method, route *template* (never a
  raw path: ids would explode the series count, and paths can hold data) and status, plus a
  `worker` label (`host:pid`). A scrape reaches one worker; each worker is its own series,
  so `sum without (worker) (rate(genloop_http_requests_total[5m]))` is the service's rate.

Access needs the viewer role (a Prometheus `authorization` block with a viewer key): no
secret is ever in these series, but they tell how much is generated, published and liked,
which is the business's data, and the issue keeps anonymous access to viewing published
items and sending feedback.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute
from starlette.concurrency import run_in_threadpool

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, FeedbackEvent, Job, Publication, WebhookDelivery
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: the feedback goal (p99 ≤ 50 ms) falls on a bucket edge."""
WORKER = f"{socket.gethostname()}:{os.getpid()}"

CATALOG_GAUGES: tuple[tuple[str, str, InstrumentedAttribute[str]], ...] = (
    ("genloop_content_items", "Content items in the catalog, by review status.", ContentItem.status),
    ("genloop_publications", "Publications, by channel.", Publication.channel),
    ("genloop_feedback_events", "Feedback events, by kind.", FeedbackEvent.kind),
    ("genloop_jobs", "Background jobs, by status.", Job.status),
    ("genloop_webhook_deliveries", "Webhook deliveries, by status.", WebhookDelivery.status),
)


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    body = ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs)
    return "{" + body + "}" if body else ""


@dataclass
class _Series:
    count: int = 0
    total_seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))


class RequestMetrics:
    """Request counts and latency histograms of this process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, str], _Series] = {}
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        with self._lock:
            series = self._series.setdefault(key, _Series())
            series.count += 1
            series.total_seconds += seconds
            for index, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    series.buckets[index] += 1

    def render(self) -> list[str]:
        with self._lock:
            snapshot = {key: (s.count, s.total_seconds, list(s.buckets)) for key, s in self._series.items()}
        lines = [
            "# HELP genloop_http_requests_total HTTP requests answered by this worker.",
            "# TYPE genloop_http_requests_total counter",
        ]
        for (method, route, status), (count, _, _) in sorted(snapshot.items()):
            labels = _labels((("method", method), ("route", route), ("status", status), ("worker", WORKER)))
            lines.append(f"genloop_http_requests_total{labels} {count}")
        lines += [
            "# HELP genloop_http_request_duration_seconds Time to answer, by route template.",
            "# TYPE genloop_http_request_duration_seconds histogram",
        ]
        histogram = "genloop_http_request_duration_seconds"
        for (method, route, status), (count, total, buckets) in sorted(snapshot.items()):
            base = (("method", method), ("route", route), ("status", status), ("worker", WORKER))
            bounds = [*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf"]
            for bound, cumulative in zip(bounds, [*buckets, count], strict=True):
                lines.append(f"{histogram}_bucket{_labels((*base, ('le', bound)))} {cumulative}")
            lines.append(f"{histogram}_sum{_labels(base)} {total:.6f}")
            lines.append(f"{histogram}_count{_labels(base)} {count}")
        lines += [
            "# HELP genloop_process_start_time_seconds When this worker started (Unix time).",
            "# TYPE genloop_process_start_time_seconds gauge",
            f"genloop_process_start_time_seconds{_labels((('worker', WORKER),))} {self.started:.3f}",
        ]
        return lines


REQUEST_METRICS = RequestMetrics()
"""This process's request metrics, fed by the request middleware in `server/logs.py`."""


def catalog_gauges(catalog: Catalog) -> list[str]:
    """One gauge family per catalog table, counted by SQL now (the same on every worker)."""
    lines: list[str] = []
    with catalog.session() as session:
        for name, help_text, column in CATALOG_GAUGES:
            label = column.key
            rows = session.execute(select(column, func.count()).group_by(column).order_by(column)).all()
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines += [f"{name}{_labels(((label, str(value)),))} {count}" for value, count in rows]
    return lines


def render_metrics(catalog: Catalog) -> str:
    return "\n".join([*catalog_gauges(catalog), *REQUEST_METRICS.render()]) + "\n"


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    response_model=None,
    operation_id="metrics",
    summary="Prometheus metrics: catalog gauges and this worker's request counters",
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format 0.0.4"}},
    **requires("viewer"),
)
async def metrics(catalog: CatalogDep) -> PlainTextResponse:
    body = await run_in_threadpool(render_metrics, catalog)
    return PlainTextResponse(body, media_type=CONTENT_TYPE)
