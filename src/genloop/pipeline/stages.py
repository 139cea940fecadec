"""The stages of the loop, in order, each as (inputs, run, still-valid) functions.

A stage's *inputs* are everything its result depends on: its config section, the
outputs of the stages before it, and for `collect` a fingerprint of the source
files. The runner hashes them to decide whether the stage must run again.
Each `run` calls the stage's plain Python API; nothing here is CLI-specific.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, DatasetVersion, ModelVersion, Publication
from genloop.config import STAGE_ORDER, GenloopConfig
from genloop.data.datasets import DatasetHandle, open_dataset_version
from genloop.pipeline.fingerprint import source_fingerprint
from genloop.workspace import Workspace

Outputs = dict[str, Any]


@dataclass(frozen=True)
class StageContext:
    workspace: Workspace
    catalog: Catalog
    executor: str | None = None
    """Overrides [clean].executor for this invocation (`--executor`)."""
    workers: int | None = None
    """Overrides [clean].workers for this invocation (`--workers`)."""

    @property
    def config(self) -> GenloopConfig:
        config = self.workspace.config
        overrides = {
            k: v for k, v in (("executor", self.executor), ("workers", self.workers)) if v is not None
        }
        if not overrides:
            return config
        return config.model_copy(update={"clean": config.clean.model_copy(update=overrides)})


@dataclass
class StageResult:
    outputs: Outputs
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    inputs: Callable[[StageContext, dict[str, Outputs]], dict[str, Any]]
    run: Callable[[StageContext, dict[str, Outputs]], StageResult]
    valid: Callable[[StageContext, Outputs], bool]


def _dataset_exists(ctx: StageContext, outputs: Outputs) -> bool:
    with ctx.catalog.session() as session:
        row = session.get(DatasetVersion, outputs.get("dataset", ""))
        return row is not None and (Path(row.path) / "manifest.json").is_file()


def _dataset(ctx: StageContext, upstream: dict[str, Outputs], stage: str) -> DatasetHandle:
    return open_dataset_version(ctx.workspace, ctx.catalog, upstream[stage]["dataset"])


# -- collect / clean / annotate ------------------------------------------------------------------


def _collect(ctx: StageContext, upstream: dict[str, Outputs]) -> StageResult:
    from genloop.data.collect import collect

    result = collect(ctx.workspace, ctx.catalog, ctx.config.collect, name=ctx.config.project.name)
    manifest = result.dataset.manifest
    licenses = ", ".join(sorted({s["license"] for s in manifest["sources"]}))
    return StageResult(
        {"dataset": result.dataset.id},
        f"{manifest['records']:,} records ({licenses}) → dataset version {result.dataset.id}",
        list(result.problems),
    )


def _drop_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for reason, info in (report.get("dropped") or {}).items():
        examples = "; ".join(str(e) for e in info.get("examples", [])[:3])
        lines.append(f"dropped {info['count']:,} × {reason}" + (f": {examples}" if examples else ""))
    return lines


def _clean(ctx: StageContext, upstream: dict[str, Outputs]) -> StageResult:
    from genloop.data.clean import clean

    result = clean(
        ctx.workspace,
        ctx.catalog,
        _dataset(ctx, upstream, "collect"),
        ctx.config.clean,
        shard_size=ctx.config.collect.shard_size,
    )
    dropped = sum(info["count"] for info in (result.report.get("dropped") or {}).values())
    kept = result.dataset.manifest["records"]
    return StageResult(
        {"dataset": result.dataset.id},
        f"kept {kept:,}, dropped {dropped:,} → dataset version {result.dataset.id}",
        _drop_lines(result.report),
    )


def _annotate(ctx: StageContext, upstream: dict[str, Outputs]) -> StageResult:
    from genloop.data.annotate import annotate

    result = annotate(
        ctx.workspace,
        ctx.catalog,
        _dataset(ctx, upstream, "clean"),
        ctx.config.annotate,
        shard_size=ctx.config.collect.shard_size,
    )
    manifest = result.dataset.manifest
    return StageResult(
        {"dataset": result.dataset.id},
        f"{manifest['records']:,} labelled records, {len(manifest['classes'])} classes "
        f"→ dataset version {result.dataset.id} (manifest.json)",
        _drop_lines(manifest.get("report") or {}),
    )


# -- train / evaluate ------------------------------------------------------------------------------


def _train(ctx: StageContext, upstream: dict[str, Outputs]) -> StageResult:
    from genloop.train import train_model

    name = ctx.config.project.name
    alias = _alias_for_new_version(ctx, name)
    result = train_model(
        ctx.workspace,
        ctx.catalog,
        _dataset(ctx, upstream, "annotate"),
        ctx.config.train,
        model_name=name,
        alias=alias,
    )
    resumed = f", resumed from step {result.resumed_from_step}" if result.resumed_from_step else ""
    lines = [f"samples: {ctx.workspace.path('runs', result.run_id, 'samples')}"]
    if alias == "challenger" and not result.already_completed:
        lines.append(
            f"{name}@champion is gated ([[gates]]): after `genloop evaluate`, "
            f"`genloop models promote {result.model_version_id}` checks the gates"
        )
    return StageResult(
        {"model_version": result.model_version_id, "run": result.run_id},
        f"model version {result.model_version_id} ({alias}; run {result.run_id}{resumed})",
        lines,
    )


def _alias_for_new_version(ctx: StageContext, name: str) -> str:
    """champion, unless a champion exists and promotions to it are gated: then challenger."""
    from genloop.errors import NotFoundError
    from genloop.models.versions import resolve_model_version

    if not any("champion" in gate.aliases for gate in ctx.config.gates):
        return "champion"
    try:
        resolve_model_version(ctx.catalog, f"{name}@champion")
    except NotFoundError:
        return "champion"  # the first version has nothing to be compared with
    return "challenger"


def _model_exists(ctx: StageContext, outputs: Outputs) -> bool:
    with ctx.catalog.session() as session:
        return session.get(ModelVersion, outputs.get("model_version", "")) is not None


def _evaluate(ctx: StageContext, upstream: dict[str, Outputs]) -> StageResult:
    from genloop.evaluate import evaluate_model, summary_lines

    result = evaluate_model(
        ctx.workspace,
        ctx.catalog,
        upstream["train"]["model_version"],
        _dataset(ctx, upstream, "annotate"),
        ctx.config.evaluate,
    )
    m = result.metrics
    headline, details = summary_lines(m)
    return StageResult({"model_version": result.model_version_id, "metrics": m}, headline, details)


# -- generate / publish ----------------------------------------------------------------------------


def _generate(ctx: StageContext, upstream: dict[str, Outputs]) -> StageResult:
    from genloop.generate.engine import GenerationRequest, generate

    config = ctx.config
    request = GenerationRequest.from_config(config.generate, model=upstream["train"]["model_version"])
    report = generate(ctx.workspace, ctx.catalog, request, config=config)
    folder = ctx.workspace.path("content")
    review = sum(item.status == "review" for item in report.items)
    details = [f"{review:,} wait for review: genloop review ls"] if review else []
    return StageResult(
        {"content": [item.id for item in report.items]},
        f"{len(report):,} {report.plan.modality} items with the AI-generated label → {folder}",
        details,
    )


def _content_exists(ctx: StageContext, outputs: Outputs) -> bool:
    ids = outputs.get("content", [])
    with ctx.catalog.session() as session:
        found = session.scalars(select(ContentItem.path).where(ContentItem.id.in_(ids))).all()
    return len(found) == len(ids) and all(ctx.workspace.artifact(p).is_file() for p in found)


def _publish(ctx: StageContext, upstream: dict[str, Outputs]) -> StageResult:
    from genloop.publish import publish_content

    channel = ctx.config.publish.channel
    outcome = publish_content(
        ctx.catalog, upstream["generate"]["content"], channel, workspace=ctx.workspace, config=ctx.config
    )
    details = [f"{len(outcome.held):,} held back (review or rejected)"] if outcome.held else []
    return StageResult(
        {"publications": outcome.publications},
        f"{len(outcome.publications):,} items on the {channel} channel",
        details,
    )


def _publications_exist(ctx: StageContext, outputs: Outputs) -> bool:
    ids = outputs.get("publications", [])
    with ctx.catalog.session() as session:
        found = session.scalars(select(Publication.id).where(Publication.id.in_(ids))).all()
    return len(found) == len(ids)


# How a stage runs, not what it produces: excluded from its cache key (every executor writes
# the same dataset version, so switching executor must not re-run the stage).
EXECUTION_ONLY = {"clean": ("executor", "workers")}


def _section(
    name: str, *needs: tuple[str, str]
) -> Callable[[StageContext, dict[str, Outputs]], dict[str, Any]]:
    def inputs(ctx: StageContext, upstream: dict[str, Outputs]) -> dict[str, Any]:
        section = ctx.config.section(name)
        for key in EXECUTION_ONLY.get(name, ()):
            section.pop(key, None)
        values: dict[str, Any] = {"config": section, "project": ctx.config.project.name}
        for stage, key in needs:
            values[f"{stage}.{key}"] = upstream[stage][key]
        return values

    return inputs


def _collect_inputs(ctx: StageContext, upstream: dict[str, Outputs]) -> dict[str, Any]:
    values = _section("collect")(ctx, upstream)
    values["fingerprint"] = source_fingerprint(ctx.workspace, ctx.config.collect)
    return values


STAGES: tuple[Stage, ...] = (
    Stage(
        "collect", "records with content-hash ids into Parquet", _collect_inputs, _collect, _dataset_exists
    ),
    Stage(
        "clean",
        "drop undecodable, blank, duplicate",
        _section("clean", ("collect", "dataset")),
        _clean,
        _dataset_exists,
    ),
    Stage(
        "annotate",
        "labels → registered dataset version",
        _section("annotate", ("clean", "dataset")),
        _annotate,
        _dataset_exists,
    ),
    Stage(
        "train",
        "train the model, checkpointed",
        _section("train", ("annotate", "dataset")),
        _train,
        _model_exists,
    ),
    Stage(
        "evaluate",
        "FD/KID/precision/recall/memorisation (images), loss + verbatim overlap (text), music metrics",
        _section("evaluate", ("train", "model_version"), ("annotate", "dataset")),
        _evaluate,
        _model_exists,
    ),
    Stage(
        "generate",
        "labelled content (images per class, texts, music)",
        _section("generate", ("train", "model_version")),
        _generate,
        _content_exists,
    ),
    Stage(
        "publish",
        "to the gallery channel",
        _section("publish", ("generate", "content")),
        _publish,
        _publications_exist,
    ),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
if STAGE_NAMES != STAGE_ORDER:  # pragma: no cover - a developer error, caught by any test
    raise RuntimeError(f"stage order drifted: {STAGE_NAMES} != {STAGE_ORDER}")
