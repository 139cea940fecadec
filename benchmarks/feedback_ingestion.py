"""Feedback ingestion over real HTTP: events/s, p50/p99 latency, and nothing lost.

    python benchmarks/feedback_ingestion.py             # SQLite and PostgreSQL, 1 and 2 workers, both modes
    python benchmarks/feedback_ingestion.py --backends sqlite --workers 1 --modes single --requests 2000
    python benchmarks/feedback_ingestion.py --workers 1 --modes batch --batch-size 10,25 --load max,2000

For each backend (SQLite in a temporary workspace; PostgreSQL in a fresh database that
is dropped afterwards) and each worker count, a real `uvicorn --workers N` serves the
app on a free loopback port, and `--clients` concurrent clients (default 16) send
`--requests` events (default 4 000), each with a unique idempotency key and its own
viewer id: many viewers, as in production, so the per-viewer rate limit
(`genloop.feedback.ratelimit`, on at its default) never triggers and the per-viewer
de-duplication of repeated clicks never merges two events. Two modes, measured apart:

* single: anonymous `POST /api/v1/feedback`, one event per request, the viewer id in
  the cookie: what the gallery sends. Latency is per event.
* batch: `POST /api/v1/feedback/batch` with an editor key, `--batch-size` events per
  request (default 100): what an integration sends. Latency is per batch request.

Two loads, measured apart (`--load`, default both):

* flat out (`max`, closed loop): each client sends its next request as soon as the last is
  answered. This measures the most events/s the server takes; the latency is then its queue
  at saturation (with 16 clients, mean latency = 16 / requests per second).
* a steady offered rate (`2000`, open loop): request i is due at start + i / rate, and its
  latency counts from when it was due, so a server that falls behind pays for the queue it
  builds (no coordinated omission, as wrk2 measures). This answers "at 2,000 events/s, what
  p99 does a sender see?"; the events/s column shows whether the rate was kept up.

Afterwards the catalog is counted: every event answered 2xx must be one stored row (0 lost).
`genloop serve` runs one process (`--workers 1`); `--workers 2` is `uvicorn --workers 2`, one
per core of the 2-vCPU machine, as a deployment on PostgreSQL would run it.

The old code can be measured side by side: `PYTHONPATH=<export of a commit>/src python
benchmarks/feedback_ingestion.py …` (the servers inherit the path; the catalog schema must match).

The clients speak HTTP/1.1 keep-alive over raw asyncio streams (`_serving`, one
connection each): a full HTTP client library would spend more CPU than the server on a
2-core machine, and the clients share the machine with the server. Latency is per request, send to last
byte. `--profile` also times the route's own work in-process with cProfile (no HTTP),
to show where a request's time goes.

Goals (issue #7): ≥ 2 000 events/s, p99 ≤ 50 ms, 0 lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from _serving import Connection, free_port, one_request, served_app  # benchmarks/ is on sys.path when run

POSTGRES_URL = os.environ.get(
    "GENLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
WORKSPACE_ENV = "GENLOOP_BENCH_WORKSPACE"
PUBLICATIONS = 20
TOML = '[project]\nname = "bench"\n'


def app_from_env():  # type: ignore[no-untyped-def]
    """The uvicorn factory (`--factory feedback_ingestion:app_from_env`): $GENLOOP_BENCH_WORKSPACE's app."""
    from genloop.workspace import Workspace

    return served_app(Workspace(Path(os.environ[WORKSPACE_ENV])))


# -- the catalog ---------------------------------------------------------------------------------


def seed(root: Path, database_url: str) -> tuple[list[str], str]:
    """A workspace at `root` whose catalog has PUBLICATIONS published items: their ids, an editor key."""
    from genloop.catalog import open_catalog
    from genloop.catalog.models import ContentItem, ModelVersion, Publication, Run
    from genloop.server.auth import create_api_key

    root.mkdir(parents=True, exist_ok=True)
    (root / "genloop.toml").write_text(TOML, encoding="utf-8")
    catalog = open_catalog(database_url)
    ids = [f"bench-pub-{i:03d}" for i in range(PUBLICATIONS)]
    with catalog.session() as session:
        session.add(Run(id="bench-run", model_name="bench", family="gpt", config={}, path="/unused"))
        session.flush()
        session.add(
            ModelVersion(id="bench-v1", name="bench", version=1, family="gpt", run_id="bench-run", path="/x")
        )
        session.flush()
        for i, publication_id in enumerate(ids):
            content_id = f"{i:032x}"
            session.add(
                ContentItem(
                    id=content_id,
                    model_version_id="bench-v1",
                    modality="text",
                    path=str(root / f"{content_id}.txt"),
                    condition={},
                    seed=i,
                    params={},
                    labels={},
                )
            )
            session.flush()
            session.add(
                Publication(
                    id=publication_id,
                    content_item_id=content_id,
                    channel="gallery",
                    published_at=datetime.now(UTC),
                )
            )
    return ids, create_api_key(catalog, name="bench-integration", role="editor").secret


def stored_count(database_url: str, prefix: str) -> int:
    from sqlalchemy import func, select

    from genloop.catalog import open_catalog
    from genloop.catalog.models import FeedbackEvent

    with open_catalog(database_url).session() as session:
        count = session.scalar(select(func.count()).where(FeedbackEvent.idempotency_key.like(f"{prefix}%")))
    return int(count or 0)


@contextmanager
def backend(name: str, tmp: Path) -> Iterator[str]:
    """A catalog URL: SQLite in `tmp`, or a fresh PostgreSQL database dropped afterwards."""
    if name == "sqlite":
        yield f"sqlite:///{tmp / 'ws' / '.genloop' / 'genloop.db'}"
        return
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    database = f"genloop_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)
    finally:
        from genloop.catalog.session import close_all

        close_all()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


# -- the server ----------------------------------------------------------------------------------


@contextmanager
def uvicorn_server(workspace: Path, database_url: str, workers: int, env: dict[str, str]) -> Iterator[int]:
    """`uvicorn --workers N` on a free loopback port, serving the workspace; yields the port."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "feedback_ingestion:app_from_env",
        "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    full_env = {**os.environ, **env, WORKSPACE_ENV: str(workspace), "GENLOOP_DATABASE_URL": database_url}
    with (workspace.parent / "server.log").open("wb") as log:  # the app logs every request (JSON)
        process = subprocess.Popen(command, env=full_env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_ready(port, process, workers)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(port: int, process: subprocess.Popen[bytes], workers: int, timeout: float = 120) -> None:
    """Until `workers` distinct connections have had an answer from /healthz (every worker started)."""
    deadline = time.monotonic() + timeout
    answered = 0
    while time.monotonic() < deadline and answered < 4 * workers:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}")
        try:
            status, _ = asyncio.run(one_request(port, "GET", "/healthz", None, {}))
            answered += status == 200
        except OSError:
            time.sleep(0.2)
    if answered < 4 * workers:
        raise TimeoutError(f"the server on port {port} did not start within {timeout} s")
    time.sleep(1.0 if workers > 1 else 0.1)  # let the last worker finish importing


# -- the clients ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    latencies_ms: list[float]
    """Per request."""
    statuses: dict[int, int]
    """Events per HTTP status of the request that carried them."""
    seconds: float


def event_body(publications: list[str], prefix: str, i: int) -> dict[str, str]:
    return {
        "publication_id": publications[i % len(publications)],
        "kind": "like" if i % 3 else "dislike",
        "idempotency_key": f"{prefix}{i:08d}",
    }


def viewer_id(prefix: str, i: int) -> str:
    return f"{prefix.replace('-', '_')}{i:016d}"


async def send_feedback(
    port: int, publications: list[str], prefix: str, requests: int, clients: int, rate: float | None
) -> Outcome:
    """`requests` single-event POSTs from `clients` concurrent connections; each a new viewer and key."""

    def request(i: int) -> tuple[str, bytes, dict[str, str], int]:
        headers = {"Content-Type": "application/json", "Cookie": f"genloop_viewer={viewer_id(prefix, i)}"}
        return "/api/v1/feedback", json.dumps(event_body(publications, prefix, i)).encode(), headers, 1

    return await run_clients(port, requests, clients, request, rate)


async def send_batches(
    port: int,
    publications: list[str],
    prefix: str,
    events: int,
    clients: int,
    rate: float | None,
    batch_size: int,
    key: str,
) -> Outcome:
    """`events` events in batch requests of `batch_size`, from `clients` concurrent connections;
    `rate` events/s offered (open loop), or None (flat out)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def request(b: int) -> tuple[str, bytes, dict[str, str], int]:
        numbers = range(b * batch_size, min(events, (b + 1) * batch_size))
        batch = [{**event_body(publications, prefix, i), "viewer_id": viewer_id(prefix, i)} for i in numbers]
        return "/api/v1/feedback/batch", json.dumps({"events": batch}).encode(), headers, len(batch)

    requests_per_s = rate / batch_size if rate is not None else None
    return await run_clients(port, -(-events // batch_size), clients, request, requests_per_s)


async def run_clients(
    port: int,
    requests: int,
    clients: int,
    build: Callable[[int], tuple[str, bytes, dict[str, str], int]],
    requests_per_s: float | None = None,
) -> Outcome:
    """`requests` POSTs `build(i)` (path, body, headers, events in it) over `clients` connections.

    Closed loop (`requests_per_s` None): each client sends its next request as soon as the
    last is answered, so the server runs flat out and the latency is its queue at saturation
    (16 clients: mean latency = 16 / requests per second). Open loop: request i is due at
    start + i / requests_per_s, and its latency counts from when it was due, not from when a
    free client sent it, so a server that falls behind is charged for the queue it builds
    (no coordinated omission, as wrk2 measures).
    """
    counter = iter(range(requests))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def client() -> None:
        connection = await Connection.open(port)
        try:
            for i in counter:
                path, body, headers, events = build(i)
                sent = time.perf_counter()
                if requests_per_s is not None:
                    due = started + i / requests_per_s
                    if due > sent:
                        await asyncio.sleep(due - sent)
                    sent = due
                status, _ = await connection.request("POST", path, body, headers)
                latencies.append((time.perf_counter() - sent) * 1000)
                statuses[status] = statuses.get(status, 0) + events
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return Outcome(latencies, statuses, time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]
        if len(values) > 1
        else values[0]
    )


# -- one measurement ------------------------------------------------------------------------------


@dataclass
class Row:
    backend: str
    mode: str
    workers: int
    offered: float | None
    """Events/s offered (open loop), None when the clients sent flat out."""
    sent: int
    ok: int
    stored: int
    events_per_s: float
    p50_ms: float
    p99_ms: float
    other_statuses: dict[int, int]


def measure(backend_name: str, workers: int, args: argparse.Namespace) -> list[Row]:
    """One server per backend and worker count; each mode and load on it in turn, each mode
    after its own warm-up."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="genloop-bench-") as tmp, backend(backend_name, Path(tmp)) as url:
        root = Path(tmp) / "ws"
        publications, editor_key = seed(root, url)
        with uvicorn_server(root, url, workers, {}) as port:
            for mode, size in modes(args):

                def send(prefix: str, n: int, rate: float | None, size: int | None = size) -> Outcome:
                    if size is None:
                        return asyncio.run(send_feedback(port, publications, prefix, n, args.clients, rate))
                    return asyncio.run(
                        send_batches(port, publications, prefix, n, args.clients, rate, size, editor_key)
                    )

                send(f"warm-{size}-", args.warmup, None)
                for rate in args.loads:
                    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
                    outcome = send(prefix, args.requests, rate)
                    stored = stored_count(url, prefix)
                    rows.append(row(backend_name, mode, workers, rate, args.requests, outcome, stored))
    return rows


def modes(args: argparse.Namespace) -> list[tuple[str, int | None]]:
    """(label, events per request or None for single events) for each mode and batch size."""
    chosen: list[tuple[str, int | None]] = []
    for mode in args.modes.split(","):
        if mode == "single":
            chosen.append(("single", None))
        elif mode == "batch":
            chosen += [(f"batch of {size}", size) for size in args.batch_sizes]
        else:
            raise SystemExit(f"--modes takes single and/or batch, not {mode!r}")
    return chosen


def row(
    backend_name: str,
    mode: str,
    workers: int,
    offered: float | None,
    sent: int,
    outcome: Outcome,
    stored: int,
) -> Row:
    ok = sum(n for status, n in outcome.statuses.items() if 200 <= status < 300)
    return Row(
        backend=backend_name,
        mode=mode,
        workers=workers,
        offered=offered,
        sent=sent,
        ok=ok,
        stored=stored,
        events_per_s=sent / outcome.seconds,
        p50_ms=percentile(outcome.latencies_ms, 50),
        p99_ms=percentile(outcome.latencies_ms, 99),
        other_statuses={s: n for s, n in outcome.statuses.items() if not 200 <= s < 300},
    )


def parse_loads(text: str) -> list[float | None]:
    """`max,2000` → [None, 2000.0]: flat out, then 2,000 events/s offered."""
    loads: list[float | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part == "max":
            loads.append(None)
            continue
        try:
            rate = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--load takes max or events/s numbers, not {part!r}") from None
        if rate <= 0:
            raise argparse.ArgumentTypeError(f"--load rates must be positive, not {part!r}")
        loads.append(rate)
    return loads


def profile_route(count: int, group: int) -> None:
    """cProfile of what the route does per event, no HTTP: groups of `group` events (as
    `group` concurrent single-event requests are stored, server/group_commit.py) under the
    per-viewer rate limit."""
    import cProfile
    import pstats

    from genloop.catalog import open_catalog
    from genloop.feedback.batch import NewEvent, record_feedback_batch
    from genloop.feedback.events import feedback_transaction
    from genloop.feedback.ratelimit import RateLimit

    with tempfile.TemporaryDirectory(prefix="genloop-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'ws' / '.genloop' / 'genloop.db'}"
        (Path(tmp) / "ws" / ".genloop").mkdir(parents=True)
        publications, _ = seed(Path(tmp) / "ws", url)
        catalog = open_catalog(url)
        events = [
            NewEvent(publications[i % PUBLICATIONS], "like", f"profile_{i:016d}", f"profile-{i:08d}")
            for i in range(count)
        ]

        def work() -> None:
            for start in range(0, count, group):
                with feedback_transaction(catalog) as connection:
                    record_feedback_batch(
                        connection, events[start : start + group], rate_limit=RateLimit(120, 60)
                    )

        started = time.perf_counter()
        profiler = cProfile.Profile()
        profiler.runcall(work)
        elapsed = time.perf_counter() - started
        per_event = elapsed / count * 1000
        print(
            f"\nroute work without HTTP (SQLite, 1 thread, groups of {group}, under cProfile): "
            f"{per_event:.2f} ms/event"
        )
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts, comma-separated")
    parser.add_argument("--modes", default="single,batch", help="comma-separated: single, batch")
    parser.add_argument("--requests", type=int, default=4000, help="events sent per measurement")
    parser.add_argument(
        "--batch-size",
        dest="batch_sizes",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[100],
        help="events per batch request, comma-separated for several (default 100)",
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument(
        "--load",
        dest="loads",
        type=parse_loads,
        default=parse_loads("max,2000"),
        help="comma-separated: max (clients send flat out) and/or events/s offered at a steady pace "
        "(open loop, latency from when each request was due); default max,2000",
    )
    parser.add_argument("--warmup", type=int, default=200, help="events sent first, not measured")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also profile N events in-process"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    load_before = os.getloadavg()[0]
    rows = [
        result
        for name in args.backends.split(",")
        for workers in args.workers.split(",")
        for result in measure(name, int(workers), args)
    ]
    print(
        f"\n{args.clients} concurrent clients, loopback, {os.cpu_count()} CPUs shared by clients and server, "
        f"load average (1 min) {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
        "latency per request (a batch's, for batches)"
    )
    columns = "backend, mode, uvicorn workers, load, events/s, p50 ms, p99 ms, sent, 2xx, stored, lost, other"
    print("| " + " | ".join(columns.split(", ")) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        other = ", ".join(f"{s}×{n}" for s, n in sorted(r.other_statuses.items())) or "—"
        load = "flat out" if r.offered is None else f"{r.offered:,.0f}/s offered"
        print(
            f"| {r.backend} | {r.mode} | {r.workers} | {load} | {r.events_per_s:,.0f} | {r.p50_ms:.1f} "
            f"| {r.p99_ms:.1f} | {r.sent} | {r.ok} | {r.stored} | {r.ok - r.stored} | {other} |"
        )
    print(f"\ncommand: python benchmarks/feedback_ingestion.py {shlex.join(sys.argv[1:])}".rstrip())
    if args.profile:
        profile_route(args.profile, args.clients)


if __name__ == "__main__":
    main()
