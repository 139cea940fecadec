"""The Ray executor of generation: an actor pool, each actor a `ChunkWorker`.

Each actor loads the model and builds the channel plan once, then samples and finishes
chunks; results come back to the driver in chunk order, where the content store writes
them (one writer). It runs on the Ray cluster this process is connected to
(`ray.init(address=…)` beforehand, or `RAY_ADDRESS`), else on a local Ray with `workers`
CPUs started here, as the data stage's Ray executor does (data/executors/ray.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from genloop.errors import GenloopError, MissingDependencyError
from genloop.generate.jobs import ChunkResult, ChunkWorker, JobSpec
from genloop.generate.requests import ItemSpec


def require_ray() -> Any:
    try:
        import ray
        import ray.util
    except ImportError:
        raise MissingDependencyError(
            "the ray executor of `genloop generate` needs Ray, which is not installed",
            hint="pip install 'genloop[ray]'  (or: pip install 'ray>=2.40'), or use --executor local",
        ) from None
    return ray


def _connect(ray: Any, workers: int) -> int:
    """Start (or join) Ray; the number of actors to run (at most one per CPU it has)."""
    if not ray.is_initialized():
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
    return max(1, min(workers, cpus))


def run_on_ray(
    job: JobSpec, chunks: Sequence[Sequence[ItemSpec]], *, workers: int
) -> Iterator[list[ChunkResult]]:
    """Yield each chunk's results, in chunk order, computed by a pool of `workers` actors."""
    if workers < 1:
        raise GenloopError(f"--workers must be ≥ 1 (got {workers})")
    ray = require_ray()
    size = min(_connect(ray, workers), max(len(chunks), 1))
    actor_class = ray.remote(num_cpus=1)(ChunkWorker)
    actors = [actor_class.remote(job) for _ in range(size)]
    pool = ray.util.ActorPool(actors)
    try:
        yield from pool.map(lambda actor, chunk: actor.run.remote(list(chunk)), list(chunks))
    finally:
        for actor in actors:
            ray.kill(actor)
