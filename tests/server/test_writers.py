"""`run_write`: SQLite writes of a catalog take turns on one thread; PostgreSQL's run in parallel.
`run_blocking`: off the loop, in the caller's context."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from genloop.catalog import Catalog
from genloop.server.writers import run_blocking, run_write


def _threads_of_concurrent_writes(catalog: Catalog, count: int = 8) -> set[int]:
    """The threads `count` concurrent 50 ms writes ran on (long enough to overlap in a pool)."""

    def write(seconds: float) -> int:
        time.sleep(seconds)
        return threading.get_ident()

    async def all_at_once() -> list[int]:
        return await asyncio.gather(*(run_write(catalog, write, 0.05) for _ in range(count)))

    return set(asyncio.run(all_at_once()))


def test_sqlite_writes_take_turns_on_one_thread_postgres_writes_run_in_the_pool(catalog: Catalog) -> None:
    threads = _threads_of_concurrent_writes(catalog)
    assert threading.get_ident() not in threads  # never on the event loop's thread
    if catalog.engine.dialect.name == "sqlite":
        assert len(threads) == 1  # one thread: the writes took turns
        assert _threads_of_concurrent_writes(catalog, 2) == threads  # the catalog's writer every time
    else:
        assert len(threads) > 1  # PostgreSQL locks rows: the writes overlapped on pool threads


_REQUEST = contextvars.ContextVar("request", default="none")


def test_run_blocking_runs_off_the_loop_in_the_callers_context_and_raises_its_errors() -> None:
    """Like starlette's run_in_threadpool, which it replaced: the caller's context variables
    are seen, the call runs on another thread, and its exception reaches the awaiting route."""

    def where() -> tuple[int, str]:
        return threading.get_ident(), _REQUEST.get()

    def fails() -> None:
        raise ValueError("the catalog said no")

    async def route() -> tuple[int, str]:
        _REQUEST.set("req-42")
        with pytest.raises(ValueError, match="the catalog said no"):
            await run_blocking(fails)
        return await run_blocking(where)

    thread, seen = asyncio.run(route())
    assert thread != threading.get_ident() and seen == "req-42"
