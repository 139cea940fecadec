"""`genloop run`: every stage in order, skipping those whose inputs are unchanged.

    collect → clean → annotate → train → evaluate → generate → publish

Stages run under the workspace lock, so two `genloop run` in one workspace never
interleave. A stage that fails leaves the cache entries of earlier stages intact:
re-running starts at the failed stage (and training resumes from its checkpoint).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from genloop.catalog import Catalog
from genloop.errors import GenloopError
from genloop.pipeline.cache import StageCache
from genloop.pipeline.stages import STAGE_NAMES, STAGES, Outputs, Stage, StageContext
from genloop.storage import stable_hash
from genloop.workspace import Workspace

Status = Literal["ran", "cached", "would run"]


@dataclass
class StageRun:
    stage: str
    status: Status
    summary: str = ""
    details: list[str] = field(default_factory=list)
    outputs: Outputs = field(default_factory=dict)
    seconds: float = 0.0


Reporter = Callable[[StageRun], None]


def _stages_until(until: str | None) -> tuple[Stage, ...]:
    if until is None:
        return STAGES
    if until not in STAGE_NAMES:
        raise GenloopError(f"unknown stage {until!r}", hint=f"stages: {', '.join(STAGE_NAMES)}")
    return STAGES[: STAGE_NAMES.index(until) + 1]


def run_pipeline(
    workspace: Workspace,
    catalog: Catalog,
    *,
    until: str | None = None,
    force: Iterable[str] = (),
    dry_run: bool = False,
    report: Reporter | None = None,
    executor: str | None = None,
    workers: int | None = None,
) -> list[StageRun]:
    """Run the stages up to `until` (default: all); `force` re-runs the named stages.

    `executor` / `workers` override [clean].executor / [clean].workers for this run only.
    """
    forced = set(force)
    unknown = forced - set(STAGE_NAMES)
    if unknown:
        raise GenloopError(f"unknown stage(s) {sorted(unknown)}", hint=f"stages: {', '.join(STAGE_NAMES)}")
    ctx = StageContext(workspace, catalog, executor, workers)
    cache = StageCache(workspace)
    upstream: dict[str, Outputs] = {}
    runs: list[StageRun] = []
    with workspace.lock():
        for stage in _stages_until(until):
            stage_run = _run_stage(stage, ctx, cache, upstream, forced, dry_run)
            runs.append(stage_run)
            if report:
                report(stage_run)
            if stage_run.status == "would run":
                # Downstream inputs depend on outputs that don't exist yet: they would run too.
                for later in _stages_until(until)[len(runs) :]:
                    runs.append(StageRun(later.name, "would run", "after the stages above"))
                    if report:
                        report(runs[-1])
                break
            upstream[stage.name] = stage_run.outputs
    return runs


def _run_stage(
    stage: Stage,
    ctx: StageContext,
    cache: StageCache,
    upstream: dict[str, Outputs],
    forced: set[str],
    dry_run: bool,
) -> StageRun:
    key = stable_hash(stage.inputs(ctx, upstream), 32)
    cached = cache.lookup(stage.name, key)
    if cached is not None and stage.name not in forced and stage.valid(ctx, cached):
        return StageRun(stage.name, "cached", "unchanged inputs", outputs=cached)
    if dry_run:
        reason = (
            "forced"
            if stage.name in forced
            else "inputs changed"
            if cache.last_outputs(stage.name)
            else "never ran"
        )
        return StageRun(stage.name, "would run", f"{stage.description} ({reason})")
    started = time.perf_counter()
    result = stage.run(ctx, upstream)
    cache.store(stage.name, key, result.outputs)
    return StageRun(
        stage.name, "ran", result.summary, result.details, result.outputs, time.perf_counter() - started
    )
