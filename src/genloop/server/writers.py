"""Where a route's blocking catalog work runs: SQLite writes on one thread per catalog, the rest in a pool.

    route (event loop) ──await run_write(catalog, fn, …)──▶ SQLite:      the catalog's writer thread
                                                          PostgreSQL:  the blocking pool
    route (event loop) ──await run_blocking(fn, …)────────▶ the blocking pool (reads, key checks)

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

The blocking pool is a plain `ThreadPoolExecutor` reached with `loop.run_in_executor`, not
starlette's `run_in_threadpool`, which wraps each call in anyio's capacity limiter and cancel
scopes: a bare `run_in_threadpool` hop cost 0.23 ms of CPU (docs/benchmarks.md), more than a
key check's query on SQLite, and the switch took a PostgreSQL feedback batch request from 3.82
to 3.64 ms of CPU in-process (median of 4, 2026-11-29). Like `run_in_threadpool`, a call sees
the caller's context variables.
When the awaiting request is cancelled (the client went away), the call still runs to its
end in its thread, so a transaction is never cut half-way; its result is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from genloop.catalog import Catalog

P = ParamSpec("P")
T = TypeVar("T")

_writers: weakref.WeakKeyDictionary[Catalog, ThreadPoolExecutor] = weakref.WeakKeyDictionary()
"""Per open catalog: once a catalog is closed and dropped, its executor goes and its thread ends."""
_writers_guard = threading.Lock()

BLOCKING_THREADS = 32
"""Enough for every connection of the default PostgreSQL pool (16 + 16 overflow, catalog/session.py)."""
_blocking = ThreadPoolExecutor(max_workers=BLOCKING_THREADS, thread_name_prefix="genloop-blocking")
"""Threads start on first use, one at a time as concurrent calls need them."""


def _sqlite_writer(catalog: Catalog) -> ThreadPoolExecutor:
    with _writers_guard:
        writer = _writers.get(catalog)
        if writer is None:
            writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genloop-sqlite-writer")
            _writers[catalog] = writer
        return writer


async def _run_in(executor: ThreadPoolExecutor, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(context.run, call, *args, **kwargs))


async def run_blocking(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`call(*args, **kwargs)` off the event loop, on the blocking pool."""
    return await _run_in(_blocking, call, *args, **kwargs)


async def run_write(catalog: Catalog, write: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`write(*args, **kwargs)` off the event loop: on the catalog's writer thread for SQLite,
    on the blocking pool otherwise."""
    executor = _sqlite_writer(catalog) if catalog.engine.dialect.name == "sqlite" else _blocking
    return await _run_in(executor, write, *args, **kwargs)
