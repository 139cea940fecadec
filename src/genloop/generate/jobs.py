"""The unit of work of a generation job: a chunk of planned items → finished files.

    ChunkWorker(job)            loads the model and builds the ChannelPlan once
      .run(chunk)               sample the chunk in one batch → Artifact per item
                                → ChannelPlan.finish_many (post-process → safety, batched
                                  where a check can → labels → bytes)

The same worker runs in the driver (the local executor) and inside each Ray actor
(generate/ray_pool.py), so both executors produce the same bytes. Workers return
finished items; only the driver writes files and catalog rows (generate/store.py), so a
job has one writer and a killed job leaves whole files or none.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genloop.catalog import Catalog, open_catalog
from genloop.config import GenloopConfig
from genloop.generate.artifact import DEFAULT_FORMAT, Artifact
from genloop.generate.finish import ChannelPlan, FinishedItem
from genloop.generate.guidance import guided_sampler, split_guidance
from genloop.generate.labels.apply import LabelContext
from genloop.generate.requests import ItemPlan, ItemSpec
from genloop.generate.safety.registry import SafetyContext
from genloop.generate.sampler import sample_chunk
from genloop.models.versions import load_model_version
from genloop.workspace import Workspace


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs, picklable (it travels to Ray actors)."""

    workspace: Workspace
    database_url: str
    config: GenloopConfig
    plan: ItemPlan
    channel: str
    producer: str


@dataclass(frozen=True)
class ChunkResult:
    spec: ItemSpec
    finished: FinishedItem
    sample_seconds: float
    """The chunk's sampling time divided among its items."""


class ChunkWorker:
    def __init__(self, job: JobSpec, catalog: Catalog | None = None) -> None:
        self.job = job
        catalog = catalog or open_catalog(job.database_url)
        loaded = load_model_version(job.workspace, catalog, job.plan.version_id)
        self.model: Any = loaded.model
        self.classes = loaded.classes
        # `best_of` / `reward` in the request's parameters: the sampler is the model wrapped
        # to keep the best of n candidates (generate/guidance.py); the model gets the rest
        self.sample_params, guidance = split_guidance(job.plan.params)
        if guidance is not None:
            self.model = guided_sampler(job.workspace, self.model, job.plan.modality, guidance)
        self.plan = ChannelPlan.build(
            job.config,
            channel=job.channel,
            modality=job.plan.modality,
            safety_context=SafetyContext(job.workspace, catalog, job.plan.version_id),
            label_context=LabelContext(job.workspace, job.producer, job.plan.version_id),
        )

    def run(self, chunk: Sequence[ItemSpec]) -> list[ChunkResult]:
        plan = self.job.plan
        start = time.perf_counter()
        data = sample_chunk(self.model, plan.family, self.classes, chunk, self.sample_params)
        per_item = (time.perf_counter() - start) / max(len(chunk), 1)
        artifacts = [
            Artifact(
                content_id=spec.content_id,
                modality=plan.modality,
                data=sampled,
                format=DEFAULT_FORMAT[plan.modality],
                meta={
                    "model_version": plan.version_id,
                    "condition": spec.condition,
                    "seed": spec.seed,
                    "params": plan.params,
                },
            )
            for spec, sampled in zip(chunk, data, strict=True)
        ]
        finished = self.plan.finish_many(artifacts)
        return [ChunkResult(spec, item, per_item) for spec, item in zip(chunk, finished, strict=True)]
