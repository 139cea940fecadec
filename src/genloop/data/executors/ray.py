"""The Ray executor: the parallel-safe head of a pipeline as Ray Data `map_batches`.

Same contract as `LocalExecutor` (an ordered parallel map over batches; the
stateful tail runs in the driver, see `genloop.data.pipeline`), on a Ray cluster:
the one this process is connected to (`ray.init(address=...)` beforehand, or
`RAY_ADDRESS`), else a local one with `workers` CPUs started here.

The record stream is cut into windows of a few batches per CPU; each window is one
Ray Dataset (`from_items` → `map_batches` → collected), so the driver holds one
window, not the corpus, and results come back in input order. Batches travel as
pickles of `list[Record]`, so steps see exactly what they see locally.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from genloop.data.executors.local import DEFAULT_BATCH_SIZE, batches, resolve_workers
from genloop.data.pipeline import BatchResult
from genloop.data.record import Record
from genloop.errors import MissingDependencyError

BATCHES_PER_CPU = 8
"""Batches per CPU in one window: enough to keep every CPU busy, few enough to bound memory."""


def require_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingDependencyError(
            "the ray executor needs Ray Data, which is not installed",
            hint='pip install "genloop[ray]"  (or: pip install "ray[data]>=2.40")',
        ) from None
    return ray


def _apply(rows: dict[str, Any], process: Callable[[list[Record]], BatchResult]) -> dict[str, Any]:
    """One Ray Data batch of rows, each a pickled batch of records → the pickled results."""
    results = [pickle.dumps(process(pickle.loads(blob))) for blob in rows["batch"]]
    return {"index": list(rows["index"]), "result": results}


@dataclass
class RayExecutor:
    """`workers`: CPUs of the local Ray started when none is connected (None: every usable core)."""

    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int | None = None

    def __post_init__(self) -> None:
        self.ray = require_ray()  # fail when the executor is created, with the install line

    def _connect(self) -> int:
        """Start (or join) Ray; returns the CPUs available to it."""
        if not self.ray.is_initialized():
            self.ray.init(
                num_cpus=resolve_workers(self.workers),
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            # Ray Data logs every dataset it runs at INFO; genloop has its own progress bar.
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        return max(int(self.ray.cluster_resources().get("CPU", 1)), 1)

    def run(
        self,
        records: Iterable[Record],
        process: Callable[[list[Record]], BatchResult],
        *,
        total: int | None = None,
        description: str = "clean",
    ) -> Iterator[BatchResult]:
        import ray.data

        cpus = self._connect()
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        numbered = enumerate(batches(records, self.batch_size))
        windows = iter(lambda: list(islice(numbered, cpus * BATCHES_PER_CPU)), [])
        # One window ahead: Ray maps the next window while the driver runs the stateful tail
        # over this one's results, so neither waits for the other.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="genloop-ray") as helper:
            running: Future[list[BatchResult]] | None = None
            for window in windows:
                following = helper.submit(_map_window, window, process)
                if running is not None:
                    yield from running.result()
                running = following
            if running is not None:
                yield from running.result()


def _map_window(
    window: list[tuple[int, list[Record]]], process: Callable[[list[Record]], BatchResult]
) -> list[BatchResult]:
    """One Ray Dataset over a window of numbered batches → their results, in input order."""
    import ray.data

    apply: Any = _apply  # Ray's stubs do not model `fn_args`
    items = [{"index": index, "batch": pickle.dumps(batch)} for index, batch in window]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    mapped = dataset.map_batches(apply, fn_args=(process,), batch_size=1, batch_format="numpy", num_cpus=1)
    rows = sorted(mapped.take_all(), key=lambda row: int(row["index"]))
    return [pickle.loads(row["result"]) for row in rows]
