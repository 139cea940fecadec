"""Where a route's blocking catalog writes run: SQLite's on one thread per catalog, others in the pool.

    route (event loop) ──await run_write(catalog, fn, …)──▶ SQLite:      the catalog's writer thread
                                                          PostgreSQL:  starlette's thread pool

SQLite admits one writer at a time, so `feedback.events.feedback_transaction` already
queues this process's writers on a lock. Sent to the thread pool, 16 concurrent feedback
requests woke 16 threads that mostly waited on that lock and fought the event loop for the
GIL; one thread that takes the writes in turn does the same work without the contention.
Measured (benchmarks/feedback_ingestion.py, SQLite, one uvicorn worker, 16 clients, batches
of 10, five alternated pairs, 2026-11-29): 3.4–4.1 k → 3.5–4.3 k events/s, and p99 52.8–62.2
→ 46.6–50.2 ms in four pairs of the five (68.5 in the fifth); single events p99 68–75 → 43–44 ms.

PostgreSQL locks rows, not the database, so its writes run concurrently in the pool. The
thread is per process and holds no data: two workers' writer threads share nothing but the
database, whose own locking still decides.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from genloop.catalog import Catalog

P = ParamSpec("P")
T = TypeVar("T")

_writers: weakref.WeakKeyDictionary[Catalog, ThreadPoolExecutor] = weakref.WeakKeyDictionary()
"""Per open catalog: once a catalog is closed and dropped, its executor goes and its thread ends."""
_writers_guard = threading.Lock()


def _sqlite_writer(catalog: Catalog) -> ThreadPoolExecutor:
    with _writers_guard:
        writer = _writers.get(catalog)
        if writer is None:
            writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genloop-sqlite-writer")
            _writers[catalog] = writer
        return writer


async def run_write(catalog: Catalog, write: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`write(*args, **kwargs)` off the event loop: on the catalog's writer thread for SQLite."""
    if catalog.engine.dialect.name != "sqlite":
        return await run_in_threadpool(write, *args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_sqlite_writer(catalog), lambda: write(*args, **kwargs))
