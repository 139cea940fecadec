"""Job kinds → the functions that do the work, in a worker process (never in the server).

    generate           genloop.generate.engine.generate, in chunks: progress + cancellation between them
    evaluate           genloop.evaluate.evaluate_model on a dataset version (default: the one it trained on)
    train              genloop.train.train_model with [train] of genloop.toml (long; not cancellable mid-run)
    deliver-webhooks   genloop.publish.deliveries.deliver_due (the webhook channel's retry loop)

A handler takes a `JobContext` and returns the job's result as plain JSON. Heavy modules
are imported inside the handlers, so importing this module (the API does, to build and
check a generation request before queueing it) stays cheap.

Generation parameters (`POST /api/v1/generations`, and the `generate` job's params) map
onto a `GenerationRequest` as `genloop generate --model` maps its options: unset fields
come from [generate] in genloop.toml; `count` alone sets the items per class too (like
`--count`); `params` is merged over [generate].params.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from genloop.catalog.models import ModelVersion, RunDataset
from genloop.config import GenloopConfig
from genloop.errors import GenloopError, NotFoundError
from genloop.generate.requests import GenerationRequest
from genloop.jobs.context import JobContext
from genloop.jobs.queue import JOB_KINDS

PROGRESS_STEPS = 10
"""A generate job reports (and can be cancelled) about this many times; each chunk reloads the model."""

Handler = Callable[[JobContext], dict[str, Any]]


def generation_request(params: dict[str, Any], config: GenloopConfig) -> GenerationRequest:
    """The request a `generate` job's params describe, with [generate]'s defaults for unset fields."""
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise GenloopError("a generate job needs `model` (a version id, name@alias or model name)")
    base = GenerationRequest.from_config(config.generate, model=model)
    count, per_class, seed = params.get("count"), params.get("per_class"), params.get("seed")
    return GenerationRequest(
        model=model,
        per_class=per_class or count or base.per_class,
        labels=list(params.get("labels") or []) or None,
        prompts=list(params.get("prompts") or []) or None,
        count=count or base.count,
        max_new_tokens=params.get("max_new_tokens") or base.max_new_tokens,
        params={**base.params, **(params.get("params") or {})},
        seed=base.seed if seed is None else int(seed),
        producer=base.producer,
        channel=params.get("channel") or base.channel,
    )


def run_generate(ctx: JobContext) -> dict[str, Any]:
    from genloop.generate.engine import generate, plan

    workspace, catalog, config = ctx.workspace, ctx.catalog, ctx.workspace.config
    request = generation_request(ctx.params, config)
    item_plan = plan(workspace, catalog, request, config)
    total = len(item_plan.items)
    chunk = max(config.generate.batch_size, math.ceil(total / PROGRESS_STEPS))
    ctx.progress(0.0, f"0 of {total} items from {item_plan.version_id}")
    created = existing = 0
    while True:
        ctx.check_cancelled()
        report = generate(workspace, catalog, request, config=config, limit=chunk)
        if created == 0 and existing == 0:
            existing = report.existing  # stored before this job (a re-run of the same request)
        created += report.created
        ctx.progress(
            len(report) / max(total, 1), f"{len(report)} of {total} items from {item_plan.version_id}"
        )
        if len(report) >= total:
            break
        if report.created == 0:
            raise GenloopError(f"generation from {item_plan.version_id} stopped making progress")
    return {
        "model_version": item_plan.version_id,
        "request_id": item_plan.request_id,
        "modality": item_plan.modality,
        "content_ids": [item.id for item in report.items],
        "created": created,
        "existing": existing,
        "to_review": sum(item.status == "review" for item in report.items),
    }


def _training_dataset(ctx: JobContext, version_id: str) -> str:
    with ctx.catalog.session() as session:
        version = session.get(ModelVersion, version_id)
        run_id = version.run_id if version else None
        used = session.scalars(
            select(RunDataset.dataset_version_id).where(
                RunDataset.run_id == run_id, RunDataset.role == "train"
            )
        ).first()
    if used is None:
        raise GenloopError(
            f"{version_id} has no training dataset in the catalog to evaluate on",
            hint="pass `dataset` (a dataset version id) in the job's params",
        )
    return used


def run_evaluate(ctx: JobContext) -> dict[str, Any]:
    from genloop.data.datasets import open_dataset_version
    from genloop.evaluate import evaluate_model
    from genloop.models.versions import resolve_model_version

    model = str(ctx.params.get("model") or "")
    version_id = resolve_model_version(ctx.catalog, model)
    dataset_id = ctx.params.get("dataset") or _training_dataset(ctx, version_id)
    dataset = open_dataset_version(ctx.workspace, ctx.catalog, str(dataset_id))
    ctx.progress(0.05, f"evaluating {version_id} on {dataset.id}")
    result = evaluate_model(ctx.workspace, ctx.catalog, version_id, dataset, ctx.workspace.config.evaluate)
    return {
        "model_version": result.model_version_id,
        "dataset_version": result.dataset_version_id,
        "metrics": result.metrics,
    }


def run_train(ctx: JobContext) -> dict[str, Any]:
    from genloop.data.datasets import open_dataset_version
    from genloop.train import train_model

    dataset_id = ctx.params.get("dataset")
    if not isinstance(dataset_id, str) or not dataset_id:
        raise GenloopError("a train job needs `dataset` (the dataset version id to train on)")
    config = ctx.workspace.config
    dataset = open_dataset_version(ctx.workspace, ctx.catalog, dataset_id)
    name = str(ctx.params.get("model_name") or config.project.name)
    ctx.progress(0.01, f"training {config.train.family} model {name} on {dataset.id}")
    result = train_model(
        ctx.workspace,
        ctx.catalog,
        dataset,
        config.train,
        model_name=name,
        init_from=ctx.params.get("init_from"),
        alias=ctx.params.get("alias", "champion"),
    )
    return {
        "model_version": result.model_version_id,
        "run_id": result.run_id,
        "epochs": result.epochs,
        "metrics": result.metrics,
        "already_completed": result.already_completed,
    }


def run_deliver_webhooks(ctx: JobContext) -> dict[str, Any]:
    """One round of webhook deliveries: every pending delivery whose retry time has come."""
    try:
        from genloop.publish.deliveries import deliver_due
    except ImportError as exc:
        raise NotFoundError(
            f"webhook deliveries are not available in this install ({exc})",
            hint="genloop.publish.deliveries.deliver_due is missing; update genloop",
        ) from None
    limit = int(ctx.params.get("limit") or 100)
    outcome = deliver_due(ctx.catalog, ctx.workspace.config, limit=limit)
    return {"delivered": outcome.delivered, "retrying": outcome.retrying, "dead": outcome.dead}


HANDLERS: dict[str, Handler] = {
    "generate": run_generate,
    "evaluate": run_evaluate,
    "train": run_train,
    "deliver-webhooks": run_deliver_webhooks,
}
if set(HANDLERS) != set(JOB_KINDS):  # pragma: no cover - a programming error, caught at import
    raise RuntimeError(f"job kinds {JOB_KINDS} and handlers {sorted(HANDLERS)} differ")
