"""Persistent text-generation worker processes for the HTTP API (never the event loop).

    route ──submit(job)──▶ pool ──pipe──▶ worker 0 ─┐  each: torch.set_num_threads(1),
       ▲                    │    ──pipe──▶ worker 1 ─┤  models loaded once per version
       └── asyncio future ◀─┴── reader thread ◀──────┘  (LRU of CACHED_MODELS)

Why processes and not threads: decoding a small GPT is many tiny matmuls, where the
GIL, torch's intra-op thread pool and Python overhead fight each other; one process per
worker with one torch thread each keeps every core busy on its own requests (the issue's
measurement: a persistent worker beat a thread-per-request server 2×).

Continuous batching inside each worker: a worker keeps up to `GENLOOP_TEXTGEN_MAX_BATCH`
requests (default 8) decoding together, one forward pass per token for all of them
(`genloop.generate.token_rows`, each with its own KV cache, seeded generator and sampling
parameters):

    loop:  read every job waiting on the pipe into a FIFO (blocking only when idle)
           admit jobs from the FIFO while fewer than max_batch rows decode
           one decode step per model version: every row gets its next token
           answer each row that ended (<eos> or max_new_tokens) at once

A job that arrives mid-batch joins at the next step instead of waiting for the batch to
end, and a short request leaves as soon as it is done. Batching does not change a text:
a row's tokens are bit-for-bit those of generating it alone with the same seed
(`generate_one`; why in `token_rows`). `GENLOOP_TEXTGEN_MAX_BATCH=1` is the unbatched
pool (one request at a time per worker), kept for comparison. The workers run at a lower
CPU priority than the server (`GENLOOP_TEXTGEN_NICE`, default 10; why at DEFAULT_NICE).

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
import sys
import threading
import time
import traceback
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from genloop.config import int_from_env
from genloop.errors import GenloopError, NotFoundError

WORKERS_ENV = "GENLOOP_TEXTGEN_WORKERS"
DEFAULT_WORKERS = 2
MAX_WORKERS = 64
MAX_BATCH_ENV = "GENLOOP_TEXTGEN_MAX_BATCH"
DEFAULT_MAX_BATCH = 8
"""Rows a worker decodes together. For the 0.8 M-parameter gpt a step costs ≈ 0.5 ms + 0.17 ms
per row on one core (measured B = 1, 4, 8: 0.65, 1.06, 1.86 ms, on a busy 2-vCPU machine), so
past ~8 rows every row waits longer for a few percent more throughput."""
LARGEST_MAX_BATCH = 256
NICE_ENV = "GENLOOP_TEXTGEN_NICE"
DEFAULT_NICE = 10
"""How much lower the workers' CPU priority is than the server's (`os.nice`; 0 = the same).

Decoding is the CPU-heavy part; the API process's part of every request (HTTP, auth,
catalog, answering) is small and latency-bound, as are the other routes (feedback, the
gallery) it serves meanwhile. At equal priority the workers' decoding delays those; niced,
the scheduler runs the API process as soon as it has something to do. Measured on 2 vCPUs
(benchmarks/text_generation_http.py, 8 clients, 2 workers, alternated): p95 87–95 ms at 0,
70–79 ms at 5, 10 and 19, with ≈ 10 % more requests/s and ≈ 10 % less CPU a request."""
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
    top_p: float | None = None


@dataclass(frozen=True)
class TextResult:
    text: str
    tokens: int
    """New tokens generated (fewer than asked when the model ended the text with <eos>)."""
    generate_ms: float
    """Time in the worker: waiting for a batch slot, model loading (first use) and decoding."""
    worker_pid: int
    batch_peak: int = 1
    """The most rows decoded together in one step while this one was (itself included)."""


def worker_count_from_env() -> int:
    """`GENLOOP_TEXTGEN_WORKERS` (default 2)."""
    return int_from_env(WORKERS_ENV, DEFAULT_WORKERS, 1, MAX_WORKERS, "a worker count")


def max_batch_from_env() -> int:
    """`GENLOOP_TEXTGEN_MAX_BATCH` (default 8): requests a worker decodes together."""
    return int_from_env(MAX_BATCH_ENV, DEFAULT_MAX_BATCH, 1, LARGEST_MAX_BATCH, "a batch size")


def nice_from_env() -> int:
    """`GENLOOP_TEXTGEN_NICE` (default 10): the workers' niceness above the server's."""
    return int_from_env(NICE_ENV, DEFAULT_NICE, 0, 19, "a niceness increment")


def _sampling_params(job: TextJob) -> dict[str, Any]:
    params: dict[str, Any] = {"max_tokens": job.max_new_tokens, "temperature": job.temperature}
    if job.top_k is not None:
        params["top_k"] = job.top_k
    if job.top_p is not None:
        params["top_p"] = job.top_p
    return params


def _prompt_ids(model: Any, job: TextJob) -> list[int]:
    tokenizer = model.tokenizer
    return [tokenizer.eos_id, *tokenizer.encode(job.prompt)]  # a text starts after <eos>, as in training


def generate_one(model: Any, job: TextJob) -> tuple[str, int]:
    """(text, new tokens) for one job alone: exactly `model.generate_text([prompt], seed=...)[0]`.

    The reference the batched worker must match. The decoding loop is the model's own
    (`generate_ids`); calling it here rather than `generate_text` only adds the token count,
    which `generate_text` drops.
    """
    import torch

    new_ids = model.generate_ids(
        torch.tensor([_prompt_ids(model, job)]), seed=job.seed, **_sampling_params(job)
    )[0]
    return model.tokenizer.decode(new_ids), len(new_ids)


# -- the worker process -------------------------------------------------------------------------


@dataclass(eq=False)
class _Pending:
    """A job in a worker: waiting for a batch slot, then decoding as `row` of `model`."""

    request_id: int
    job: TextJob
    received: float
    model: Any = None
    row: Any = None  # a genloop.generate.token_rows.TokenRow once admitted
    batch_peak: int = 0


class _ConnectionLost(Exception):
    """The server closed its end of the pipe: the worker has nobody to answer."""


class _BatchingWorker:
    """The loop of one worker process: read, admit, one decode step, answer (module docstring)."""

    def __init__(self, conn: Connection, workspace_root: str, database_url: str, max_batch: int) -> None:
        from genloop.workspace import Workspace

        self.conn = conn
        self.workspace = Workspace(Path(workspace_root))
        self.database_url = database_url
        self.max_batch = max_batch
        self.catalog: Any = None
        self.models: OrderedDict[str, Any] = OrderedDict()
        self.waiting: deque[_Pending] = deque()
        self.decoding: list[_Pending] = []

    def run(self) -> None:
        try:
            while self._read():
                self._admit()
                self._step()
        except _ConnectionLost:
            return

    def _read(self) -> bool:
        """Move every job on the pipe to `waiting`, blocking only when there is nothing to do;
        False once the server says stop (None) or has gone."""
        try:
            while (not self.waiting and not self.decoding) or self.conn.poll():
                message = self.conn.recv()
                if message is None:
                    return False
                request_id, job = message
                self.waiting.append(_Pending(request_id, job, received=time.perf_counter()))
        except (EOFError, OSError):
            return False
        return True

    def _admit(self) -> None:
        from genloop.generate.token_rows import new_row
        from genloop.models.sampling import SamplingParams

        while self.waiting and len(self.decoding) < self.max_batch:
            pending = self.waiting.popleft()
            try:
                pending.model = self._model(pending.job.version_id)
                params = SamplingParams.from_params(_sampling_params(pending.job))
                prompt = _prompt_ids(pending.model, pending.job)
                pending.row = new_row(pending.model, prompt, params, pending.job.seed)
            except Exception:
                self._fail(pending)
                continue
            self.decoding.append(pending)

    def _step(self) -> None:
        """One token for every decoding row (one batched forward per model); answer ended rows."""
        from genloop.generate.token_rows import decode_step

        by_model: dict[int, list[_Pending]] = {}
        for pending in self.decoding:
            by_model.setdefault(id(pending.model), []).append(pending)
        for group in by_model.values():
            try:
                decode_step(group[0].model, [p.row for p in group])
            except Exception:  # fail this step's rows, keep serving the others
                for pending in group:
                    self.decoding.remove(pending)
                    self._fail(pending)
                continue
            for pending in group:
                pending.batch_peak = max(pending.batch_peak, len(group))
                if pending.row.done:
                    self.decoding.remove(pending)
                    self._answer(pending)

    def _model(self, version_id: str) -> Any:
        """The loaded model of a version (LRU of CACHED_MODELS; decoding rows keep their own)."""
        from genloop.catalog import open_catalog
        from genloop.models.versions import load_model_version

        model = self.models.get(version_id)
        if model is None:
            self.catalog = self.catalog or open_catalog(self.database_url)
            model = load_model_version(self.workspace, self.catalog, version_id).model
            model.eval()
            self.models[version_id] = model
            while len(self.models) > CACHED_MODELS:
                self.models.popitem(last=False)
        self.models.move_to_end(version_id)
        return model

    def _answer(self, pending: _Pending) -> None:
        new_ids = pending.row.new_ids
        elapsed = (time.perf_counter() - pending.received) * 1000
        text = pending.model.tokenizer.decode(new_ids)
        result = TextResult(text, len(new_ids), elapsed, os.getpid(), pending.batch_peak)
        self._send((pending.request_id, "ok", result))

    def _fail(self, pending: _Pending) -> None:
        """Answer the exception being handled: a GenloopError's message and hint, else a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, GenloopError):  # bad input or a missing model: the user can act on it
            kind = "not_found" if isinstance(exc, NotFoundError) else "error"
            self._send((pending.request_id, kind, (exc.message, exc.hint)))
        else:  # a bug: its traceback goes to the server's log
            self._send((pending.request_id, "bug", traceback.format_exc()))

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self.conn.send(message)
        except (BrokenPipeError, OSError):
            raise _ConnectionLost from None


def _worker_main(
    conn: Connection, workspace_root: str, database_url: str, max_batch: int, nice: int = 0
) -> None:
    """Serve jobs from `conn`, decoding up to `max_batch` together, until it sends None or closes;
    at `nice` lower CPU priority than the server (see DEFAULT_NICE)."""
    import torch

    torch.set_num_threads(1)
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    _BatchingWorker(conn, workspace_root, database_url, max_batch).run()


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
    """`size` persistent worker processes generating text for one workspace, each decoding
    up to `max_batch` requests together."""

    def __init__(
        self,
        workspace_root: Path,
        database_url: str,
        size: int,
        max_batch: int = DEFAULT_MAX_BATCH,
        nice: int = DEFAULT_NICE,
    ) -> None:
        if size < 1:
            raise GenloopError(f"a text-generation pool needs at least one worker (got {size})")
        if max_batch < 1:
            raise GenloopError(f"a worker's batch holds at least one request (got max_batch={max_batch})")
        if not 0 <= nice <= 19:
            raise GenloopError(f"a worker's niceness increment is 0 to 19 (got nice={nice})")
        self.workspace_root = str(workspace_root)
        self.database_url = database_url
        self.size = size
        self.max_batch = max_batch
        self.nice = nice
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
            args=(child_end, self.workspace_root, self.database_url, self.max_batch, self.nice),
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
