"""Executors run the parallel-safe head of a data pipeline: `local` (processes) or `ray`.

`make_executor` is what `clean`/`annotate` and the CLI's `--executor` call; resumable
work directories (completed shards marked, a killed run resumed) are in `resume.py`.
"""

from __future__ import annotations

from typing import Literal

from genloop.data.executors.local import DEFAULT_BATCH_SIZE, LocalExecutor
from genloop.data.pipeline import Executor

ExecutorName = Literal["local", "ray"]


def make_executor(
    name: ExecutorName = "local", *, workers: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> Executor:
    """`local`: a process pool over `workers` cores (None: all usable); `ray`: Ray Data.

    Raises MissingDependencyError (with the pip line) for `ray` when Ray is not installed.
    """
    if name == "local":
        return LocalExecutor(batch_size, workers)
    if name == "ray":
        from genloop.data.executors.ray import RayExecutor

        return RayExecutor(batch_size, workers)
    raise ValueError(f"unknown executor {name!r}: use 'local' or 'ray'")


def stage_executor(name: ExecutorName, workers: int | None, shard_size: int) -> Executor:
    """The executor a stage uses: batches no larger than its output shards (`shard_size`)."""
    return make_executor(name, workers=workers, batch_size=min(shard_size, DEFAULT_BATCH_SIZE))
