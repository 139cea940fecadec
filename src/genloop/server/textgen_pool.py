"""Persistent text-generation worker processes for the HTTP API (never the event loop).

    route ──submit(job)──▶ pool ──pipe──▶ worker 0 ─┐  each: torch.set_num_threads(1),
       ▲                    │    ──pipe──▶ worker 1 ─┤  models loaded once per version
       └── asyncio future ◀─┴── reader thread ◀──────┘  (LRU of CACHED_MODELS)

Why processes and not threads: decoding a small GPT is many tiny matmuls, where the
GIL, torch's intra-op thread pool and Python overhead fight each other; one process per
worker with one torch thread each keeps every core busy on its own request (the issue's
measurement: a persistent worker beat a thread-per-request server 2×).

Shape of the exchange: the event loop sends a `TextJob` to the worker with the fewest
jobs in flight (a duplex pipe per worker); one reader thread waits on every worker's
pipe and process sentinel (`multiprocessing.connection.wait`) and resolves the asyncio
future of each answer with `loop.call_soon_threadsafe`. A worker that dies fails its
jobs in flight (`WorkerCrashedError`, 503) and is replaced.

The cache is keyed by the *version id* (immutable: a version's files never change), and
the route resolves aliases on every request, so a promotion takes effect at once and two
API processes cannot disagree on what `NAME@champion` means.

Lifecycle: `TextGenPool.start()` spawns the workers (spawn context: no forked torch or
catalog state); `close()` asks them to stop and joins them. A `weakref.finalize` closes a
forgotten pool at interpreter exit, so no worker outlives the server.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import threading
import time
import traceback
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from genloop.errors import GenloopError, NotFoundError

WORKERS_ENV = "GENLOOP_TEXTGEN_WORKERS"
DEFAULT_WORKERS = 2
MAX_WORKERS = 64
CACHED_MODELS = 4
"""Model versions each worker keeps loaded (least recently used one dropped first)."""
RESTART_LIMIT = 5
RESTART_WINDOW_S = 60.0
"""More worker deaths than this within the window is a crash loop: stop replacing them."""
TEXT_FAMILIES = ("gpt",)
"""Families the pool can serve: those with `generate_ids` and a tokenizer with `eos_id`."""


class WorkerCrashedError(GenloopError):
    """A worker process died with the job in flight (out of memory, killed): retry."""


@dataclass(frozen=True)
class TextJob:
    version_id: str
    prompt: str
    max_new_tokens: int
    temperature: float
    top_k: int | None
    seed: int


@dataclass(frozen=True)
class TextResult:
    text: str
    tokens: int
    """New tokens generated (fewer than asked when the model ended the text with <eos>)."""
    generate_ms: float
    """Time spent in the worker, model loading included."""
    worker_pid: int


def worker_count_from_env() -> int:
    """`GENLOOP_TEXTGEN_WORKERS` (default 2), checked: a clear error instead of a silent default."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if not raw:
        return DEFAULT_WORKERS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WORKERS:
        raise GenloopError(
            f"{WORKERS_ENV}={raw!r} is not a worker count",
            hint=f"set it to an integer from 1 to {MAX_WORKERS} (default {DEFAULT_WORKERS}), or unset it",
        )
    return int(raw)


def generate_one(model: Any, job: TextJob) -> tuple[str, int]:
    """(text, new tokens) for one job: exactly `model.generate_text([prompt], seed=...)[0]`.

    The decoding loop is the model's own (`generate_ids`); calling it here rather than
    `generate_text` only adds the token count, which `generate_text` drops.
    """
    import torch

    tokenizer = model.tokenizer
    ids = [tokenizer.eos_id, *tokenizer.encode(job.prompt)]  # a text starts after <eos>, as in training
    params: dict[str, Any] = {"max_tokens": job.max_new_tokens, "temperature": job.temperature}
    if job.top_k is not None:
        params["top_k"] = job.top_k
    new_ids = model.generate_ids(torch.tensor([ids]), seed=job.seed, **params)[0]
    return tokenizer.decode(new_ids), len(new_ids)


# -- the worker process -------------------------------------------------------------------------


def _worker_main(conn: Connection, workspace_root: str, database_url: str) -> None:
    """Serve jobs from `conn` until it sends None or closes (the parent went away)."""
    import torch

    torch.set_num_threads(1)
    from genloop.catalog import Catalog, open_catalog
    from genloop.models.versions import load_model_version
    from genloop.workspace import Workspace

    workspace = Workspace(Path(workspace_root))
    catalog: Catalog | None = None
    models: OrderedDict[str, Any] = OrderedDict()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        request_id, job = message
        started = time.perf_counter()
        try:
            model = models.get(job.version_id)
            if model is None:
                catalog = catalog or open_catalog(database_url)
                model = load_model_version(workspace, catalog, job.version_id).model
                models[job.version_id] = model
                while len(models) > CACHED_MODELS:
                    models.popitem(last=False)
            models.move_to_end(job.version_id)
            text, tokens = generate_one(model, job)
            elapsed = (time.perf_counter() - started) * 1000
            reply: tuple[Any, ...] = (request_id, "ok", TextResult(text, tokens, elapsed, os.getpid()))
        except GenloopError as exc:  # bad input or a missing model: the user can act on it
            kind = "not_found" if isinstance(exc, NotFoundError) else "error"
            reply = (request_id, kind, (exc.message, exc.hint))
        except Exception:  # a bug: its traceback goes back to the server's log
            reply = (request_id, "bug", traceback.format_exc())
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


# -- the pool (in the server process) -----------------------------------------------------------


@dataclass(eq=False)  # identity: two workers are never "equal"
class _Worker:
    process: Any  # multiprocessing.context.SpawnProcess
    conn: Connection
    in_flight: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[TextResult]]] = field(
        default_factory=dict
    )
    send_lock: threading.Lock = field(default_factory=threading.Lock)


def _resolve(future: asyncio.Future[TextResult], result: TextResult | None, error: Exception | None) -> None:
    if future.done():  # the client went away and the route was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


def _error_from(kind: str, payload: Any) -> Exception:
    if kind == "not_found":
        return NotFoundError(payload[0], hint=payload[1])
    if kind == "error":
        return GenloopError(payload[0], hint=payload[1])
    return RuntimeError(f"text-generation worker failed:\n{payload}")


def _stop_workers(workers: list[_Worker], timeout: float) -> None:
    """Ask each worker to stop, then make sure it did (terminate after `timeout` seconds)."""
    for worker in workers:
        try:
            with worker.send_lock:
                worker.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join(2)
        worker.conn.close()


class TextGenPool:
    """`size` persistent worker processes generating text for one workspace."""

    def __init__(self, workspace_root: Path, database_url: str, size: int) -> None:
        if size < 1:
            raise GenloopError(f"a text-generation pool needs at least one worker (got {size})")
        self.workspace_root = str(workspace_root)
        self.database_url = database_url
        self.size = size
        self.restarts = 0
        self._recent_deaths: list[float] = []
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = False
        self._wake_reader, self._wake_writer = self._context.Pipe(duplex=False)
        self._reader: threading.Thread | None = None
        # Closes a pool nobody closed (the list is shared, the pool is not kept alive by it).
        self._finalizer = weakref.finalize(self, _stop_workers, self._workers, 5.0)

    # -- lifecycle

    def start(self) -> TextGenPool:
        with self._lock:
            if self._reader is not None:
                return self
            self._workers.extend(self._spawn() for _ in range(self.size))
            self._reader = threading.Thread(target=self._read_replies, name="textgen-reader", daemon=True)
            self._reader.start()
        return self

    def _spawn(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child_end, self.workspace_root, self.database_url),
            name="genloop-textgen",
            # a daemonic process (e.g. a multiprocessing worker) may not have daemonic children
            daemon=not multiprocessing.current_process().daemon,
        )
        process.start()
        child_end.close()
        return _Worker(process=process, conn=parent_end)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers (idempotent); jobs still in flight fail with WorkerCrashedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake_writer.send(None)
        if self._reader is not None:
            self._reader.join(timeout)
        with self._lock:
            stranded = [pending for worker in self._workers for pending in worker.in_flight.values()]
            for worker in self._workers:
                worker.in_flight.clear()
        for loop, future in stranded:
            error = WorkerCrashedError("the server is shutting down", hint="retry on another server")
            loop.call_soon_threadsafe(_resolve, future, None, error)
        self._finalizer()
        self._wake_reader.close()
        self._wake_writer.close()

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    # -- requests

    async def generate(self, job: TextJob) -> TextResult:
        """Run `job` on the least busy worker; raises what the worker raised (GenloopError...)."""
        if self._closed:
            raise WorkerCrashedError("the text-generation pool is closed", hint="the server is stopping")
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TextResult] = loop.create_future()
        request_id = next(self._ids)
        with self._lock:
            if not self._workers:
                raise WorkerCrashedError(
                    "the text-generation workers keep dying, so none is running",
                    hint="see the server log for the workers' error; restart the server once it is fixed",
                )
            worker = min(self._workers, key=lambda w: len(w.in_flight))
            worker.in_flight[request_id] = (loop, future)
        try:
            with worker.send_lock:  # a job is a few hundred bytes: the pipe takes it at once
                worker.conn.send((request_id, job))
        except (BrokenPipeError, OSError):
            with self._lock:
                worker.in_flight.pop(request_id, None)
            raise WorkerCrashedError("a text-generation worker is restarting", hint="retry") from None
        try:
            return await future
        finally:
            with self._lock:
                worker.in_flight.pop(request_id, None)

    # -- the reader thread

    def _read_replies(self) -> None:
        while True:
            with self._lock:
                workers = list(self._workers)
            by_conn = {id(w.conn): w for w in workers}
            by_sentinel = {w.process.sentinel: w for w in workers}
            ready = wait([self._wake_reader, *(w.conn for w in workers), *by_sentinel])
            if self._closed:
                return
            for item in ready:
                if isinstance(item, int):
                    continue  # sentinels are handled after the pipes are drained
                worker = by_conn.get(id(item))
                if worker is not None:
                    self._deliver(worker)
            for item in ready:
                if isinstance(item, int) and item in by_sentinel:
                    self._replace(by_sentinel[item])

    def _deliver(self, worker: _Worker) -> None:
        try:
            request_id, kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            return  # the worker died; its sentinel says so
        with self._lock:
            pending = worker.in_flight.pop(request_id, None)
        if pending is None:
            return
        loop, future = pending
        if kind == "ok":
            loop.call_soon_threadsafe(_resolve, future, payload, None)
        else:
            loop.call_soon_threadsafe(_resolve, future, None, _error_from(kind, payload))

    def _replace(self, dead: _Worker) -> None:
        dead.process.join(0)
        with self._lock:
            if self._closed or dead not in self._workers:
                return
            stranded = list(dead.in_flight.values())
            dead.in_flight.clear()
            now = time.monotonic()
            self._recent_deaths = [t for t in self._recent_deaths if now - t < RESTART_WINDOW_S] + [now]
            if len(self._recent_deaths) > RESTART_LIMIT:  # a crash loop: respawning would only spin
                self._workers.remove(dead)
            else:
                self._workers[self._workers.index(dead)] = self._spawn()
                self.restarts += 1
        dead.conn.close()
        code = dead.process.exitcode
        for loop, future in stranded:
            error = WorkerCrashedError(
                f"the text-generation worker died (exit code {code}) while generating",
                hint="retry; if it keeps happening the model may not fit in memory",
            )
            loop.call_soon_threadsafe(_resolve, future, None, error)
