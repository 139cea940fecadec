"""The local executor: batches over a pool of worker processes, one per usable core.

`run_pipeline` hands an executor only the parallel-safe head of a pipeline (see the
contract in `genloop.data.pipeline`); stateful steps run in the driver afterwards.
So this executor is an ordered parallel map: batches of `batch_size` records go to
`workers` processes and come back in input order, with at most `2 × workers`
batches in flight, so memory stays bounded by a few batches whatever the corpus.

A first, smaller batch always runs in this process, timed: when the rest would take less
than `min_pool_seconds` at that pace, it stays here too, because a pool's start-up
(a second or more on a busy machine) would cost more than it saves; tiny inputs
and tests of single steps get plain tracebacks. `workers=1` never starts a pool.

Workers are forked when this process has a single thread (fast, nothing to
re-import); otherwise they start from a `forkserver`, since forking a process
whose other threads hold locks (a progress bar, a database pool, torch) can
deadlock the child. A forkserver worker imports the main module, so a script that
calls genloop needs the `if __name__ == "__main__":` guard; the error says so.
The steps are pickled once per worker (a language-id model can weigh tens of MB),
not once per batch; steps that cannot be pickled make the run stay in this
process, with a warning naming the reason, rather than fail.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice

from genloop.data.pipeline import BatchResult
from genloop.data.record import Record
from genloop.errors import GenloopError

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 512
"""Records per batch: small enough that 5,000 records keep 2 workers evenly busy."""
MIN_POOL_SECONDS = {"fork": 0.25, "forkserver": 2.0, "spawn": 2.0}
"""Default `min_pool_seconds` by start method: forked workers are up in ~0.05 s, others import genloop."""
PROBE_FRACTION = 8
"""Estimated work (seconds in one process) below which starting a pool does not pay."""


def batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, e.g. a container's CPU set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_workers(workers: int | None) -> int:
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers}); leave it unset to use every core")
    return workers or usable_cores()


_worker_process: Callable[[list[Record]], BatchResult] | None = None


def _install(pickled: bytes) -> None:
    """Pool initializer: unpickle the steps once in each worker."""
    global _worker_process
    _worker_process = pickle.loads(pickled)


def _run_installed(batch: list[Record]) -> BatchResult:
    if _worker_process is None:
        raise RuntimeError("worker process started without its pipeline steps")
    return _worker_process(batch)


def _pool_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


@dataclass(frozen=True)
class LocalExecutor:
    """`workers=None` uses every usable core; `workers=1` is the single-process executor."""

    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int | None = None
    min_pool_seconds: float | None = None
    """Estimated remaining work below which the pool is not started; None: by start method."""

    def run(
        self,
        records: Iterable[Record],
        process: Callable[[list[Record]], BatchResult],
        *,
        total: int | None = None,
        description: str = "clean",
    ) -> Iterator[BatchResult]:
        workers = resolve_workers(self.workers)
        if workers == 1:
            yield from map(process, batches(records, self.batch_size))
            return
        # A short probe batch, so the part done before the pool starts stays small.
        iterator = iter(records)
        first = list(islice(iterator, max(1, self.batch_size // PROBE_FRACTION)))
        if not first:
            return
        pending = batches(iterator, self.batch_size)
        started = time.perf_counter()
        result = process(first)
        per_record = (time.perf_counter() - started) / len(first)
        yield result
        context = _pool_context()
        threshold = self.min_pool_seconds
        if threshold is None:
            threshold = MIN_POOL_SECONDS.get(context.get_start_method(), 2.0)
        if total is not None and per_record * (total - len(first)) < threshold:
            yield from map(process, pending)
            return
        try:
            pickled = pickle.dumps(process)
        except Exception as exc:
            log.warning("%s runs in one process: its steps cannot be sent to workers (%s)", description, exc)
            yield from map(process, pending)
            return
        try:
            yield from self._run_pool(pending, pickled, workers, context)
        except BrokenProcessPool as exc:
            raise GenloopError(
                f"a {description} worker process died ({exc})",
                hint='calling genloop from a script? put the call under `if __name__ == "__main__":` '
                "(workers import the script); else run with [clean].workers = 1 to see the error here",
            ) from exc

    def _run_pool(
        self,
        pending: Iterator[list[Record]],
        pickled: bytes,
        workers: int,
        context: multiprocessing.context.BaseContext,
    ) -> Iterator[BatchResult]:
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_install, initargs=(pickled,)
        )
        futures: deque[Future[BatchResult]] = deque()
        try:
            for batch in pending:
                futures.append(pool.submit(_run_installed, batch))
                if len(futures) >= 2 * workers:
                    yield futures.popleft().result()
            while futures:
                yield futures.popleft().result()
        finally:
            # Also on an error or an abandoned generator: drop queued batches, don't wait for them.
            pool.shutdown(wait=True, cancel_futures=True)
