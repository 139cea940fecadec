"""Generation: a request → sampled, post-processed, checked, labelled files + catalog rows.

    plan_items (requests.py)      every item's condition, seed and content id
    skip the stored ones          a re-run, or a killed job run again, does only the rest
    chunks of batch_size          ChunkWorker.run: one batched sample + ChannelPlan.finish each
                                  (local: in this process; ray: an actor pool, ray_pool.py)
    store (store.py)              atomic file under .genloop/content/ + a ContentItem row

The same request gives the same bytes on either executor and at any batch size: every
item samples with its own seed. Items that fail a safety check (or all, on a channel
that reviews everything) are stored with status "review" and wait for
`genloop review approve`; they are never published before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from genloop.catalog import Catalog
from genloop.catalog.models import ModelVersion
from genloop.config import GenloopConfig
from genloop.errors import GenloopError, NotFoundError
from genloop.generate.jobs import ChunkResult, ChunkWorker, JobSpec
from genloop.generate.requests import GenerationRequest, ItemPlan, ItemSpec, item_seed, plan_items
from genloop.generate.sampler import to_pil
from genloop.generate.store import store_results, stored_items
from genloop.models.label_prior import read_label_prior
from genloop.models.versions import resolve_model_version
from genloop.progress import stage_progress
from genloop.workspace import Workspace

__all__ = [
    "GeneratedItem",
    "GenerationReport",
    "GenerationRequest",
    "generate",
    "item_seed",
    "plan",
    "to_pil",
]

Executor = Literal["local", "ray"]


@dataclass(frozen=True)
class GeneratedItem:
    id: str
    condition: dict[str, str]
    seed: int
    path: Path
    status: str
    """ready | review (or, for items stored before, whatever reviewers made of them)."""
    created: bool

    @property
    def label(self) -> str | None:
        return self.condition.get("label")


@dataclass(frozen=True)
class GenerationReport:
    plan: ItemPlan
    items: list[GeneratedItem]
    seconds: float

    @property
    def created(self) -> int:
        return sum(item.created for item in self.items)

    @property
    def existing(self) -> int:
        return len(self.items) - self.created

    @property
    def to_review(self) -> int:
        return sum(item.created and item.status == "review" for item in self.items)

    @property
    def items_per_second(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0

    def __iter__(self) -> Iterator[GeneratedItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> GeneratedItem:
        return self.items[index]


def plan(
    workspace: Workspace, catalog: Catalog, request: GenerationRequest, config: GenloopConfig
) -> ItemPlan:
    """The items `request` stands for, from the model's config.json (no weights are loaded)."""
    version_id = resolve_model_version(catalog, request.model)
    with catalog.session() as session:
        row = session.get(ModelVersion, version_id)
        if row is None:
            raise NotFoundError(f"model version {version_id!r} is not in the catalog")
        family, path = row.family, workspace.artifact(row.path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise NotFoundError(
            f"model version {version_id}: {config_path} is missing",
            hint="the files under .genloop/models were moved or deleted; retrain with `genloop train`",
        )
    classes = list(json.loads(config_path.read_text(encoding="utf-8")).get("classes") or [])
    prior = read_label_prior(path, classes) if request.draw is not None else None
    return plan_items(
        request, version_id=version_id, family=family, classes=classes, config=config, label_prior=prior
    )


def generate(
    workspace: Workspace,
    catalog: Catalog,
    request: GenerationRequest,
    *,
    config: GenloopConfig | None = None,
    batch_size: int | None = None,
    executor: Executor = "local",
    workers: int = 2,
    limit: int | None = None,
) -> GenerationReport:
    """Make every item of `request` not stored yet; report all of them, in plan order.

    `limit` stops after that many new items (a partial job, as a kill would leave it).
    """
    config = config or workspace.config
    batch_size = batch_size or config.generate.batch_size
    if batch_size < 1:
        raise GenloopError(f"batch size must be ≥ 1 (got {batch_size})")
    if executor not in ("local", "ray"):
        raise GenloopError(f"unknown executor {executor!r}", hint="use --executor local or --executor ray")
    start = time.perf_counter()
    item_plan = plan(workspace, catalog, request, config)
    stored = stored_items(workspace, catalog, (item.content_id for item in item_plan.items))
    todo = [item for item in item_plan.items if item.content_id not in stored][:limit]
    made: dict[str, GeneratedItem] = {}
    with stage_progress("generate", total=len(item_plan.items)) as advance:
        advance(len(stored))
        if todo:
            job = JobSpec(
                workspace, workspace.database_url, config, item_plan, request.channel, request.producer
            )
            chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
            for results in _run_chunks(job, catalog, chunks, executor, workers):
                for result, path in store_results(workspace, catalog, item_plan, request.channel, results):
                    made[result.spec.content_id] = _generated(result, path)
                advance(len(results))
    items = []
    for spec in item_plan.items:
        if spec.content_id in made:
            items.append(made[spec.content_id])
        elif spec.content_id in stored:
            row = stored[spec.content_id]
            items.append(
                GeneratedItem(
                    spec.content_id,
                    spec.condition,
                    spec.seed,
                    workspace.artifact(row.path),
                    row.status,
                    False,
                )
            )
    return GenerationReport(item_plan, items, time.perf_counter() - start)


def _run_chunks(
    job: JobSpec, catalog: Catalog, chunks: Sequence[Sequence[ItemSpec]], executor: Executor, workers: int
) -> Iterator[list[ChunkResult]]:
    if executor == "ray":
        from genloop.generate.ray_pool import run_on_ray

        yield from run_on_ray(job, chunks, workers=workers)
        return
    worker = ChunkWorker(job, catalog)
    for chunk in chunks:
        yield worker.run(chunk)


def _generated(result: ChunkResult, path: Path) -> GeneratedItem:
    spec = result.spec
    return GeneratedItem(spec.content_id, spec.condition, spec.seed, path, result.finished.status, True)
