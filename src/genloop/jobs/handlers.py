"""Job kinds → the functions that do the work, in a worker process (never in the server).

    generate           genloop.generate.engine.generate, in chunks: progress + cancellation between them
    evaluate           genloop.evaluate.evaluate_model on a dataset version (default: the one it trained on)
    train              genloop.train.train_model with [train] of genloop.toml (long; not cancellable mid-run)
    deliver-webhooks   genloop.publish.deliveries.deliver_due (the webhook channel's retry loop)
    adcopy-generate    genloop.apps.adcopy.studio.write_copy, the model loaded once: progress
                       ("k of N products") + cancellation between them

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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from genloop.catalog.models import ModelVersion, RunDataset
from genloop.config import GenloopConfig
from genloop.errors import GenloopError, NotFoundError
from genloop.generate.requests import GenerationRequest
from genloop.jobs.context import JobContext
from genloop.jobs.queue import JOB_KINDS

if TYPE_CHECKING:
    from genloop.apps.adcopy.products import Product
    from genloop.apps.adcopy.studio import ProductCopy

PROGRESS_STEPS = 10
"""A generate job reports (and can be cancelled) about this many times; each chunk reloads the model."""
ADCOPY_MAX_N = 40
"""Lines per product an adcopy-generate job may ask for."""

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


def adcopy_products(params: dict[str, Any]) -> list[Product]:
    """The products of an `adcopy-generate` job, validated as a product table's rows are."""
    from genloop.apps.adcopy.products import products_from_rows

    rows = params.get("products")
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        raise GenloopError(
            "an adcopy-generate job needs `products`: a non-empty list of product objects",
            hint="queue it with POST /api/v1/adcopy/jobs, which checks the products first",
        )
    return products_from_rows(list(enumerate(rows, start=1)), Path("products"))


def _number(
    params: dict[str, Any], name: str, default: float, low: float, high: float, *, whole: bool = False
) -> float:
    value = params.get(name, default)
    kinds = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        what = "a whole number" if whole else "a number"
        raise GenloopError(f"an adcopy-generate job's `{name}` must be {what} in {low:g}..{high:g}")
    return float(value)


def product_copy_json(copy: ProductCopy) -> dict[str, Any]:
    """One product's lines as POST /api/v1/adcopy/generate answers them (and the job's result holds)."""
    return {
        "product_id": copy.product.id,
        "model_version": copy.model_version,
        "lines": [
            {
                "rank": line.rank,
                "text": line.text,
                "score": round(line.score, 4),
                "content_item_id": line.content_id,
                "repairs": list(line.candidate.repairs),
            }
            for line in copy.lines
        ],
        "sampled": copy.sampled,
        "dropped": dict(copy.dropped),
        "seconds": round(copy.seconds, 3),
        "impossible": list(copy.impossible),
    }


def run_adcopy_generate(ctx: JobContext) -> dict[str, Any]:
    """Ranked ad lines for every product, with progress and cancellation between products. A
    re-run stores no line twice (a line's content id hashes model, product, prompt, seed,
    params and text, so the same job writes the same ids and the store keeps the rows it has)."""
    from genloop.apps.adcopy.constraints import impossible_report
    from genloop.apps.adcopy.studio import ImpossibleConstraints, write_copy

    params = ctx.params
    products = adcopy_products(params)
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise GenloopError("an adcopy-generate job needs `model` (a version id, NAME@alias or NAME)")
    n = int(_number(params, "n", 5, 1, ADCOPY_MAX_N, whole=True))
    seed = int(_number(params, "seed", 0, 0, 2**31 - 1, whole=True))
    temperature = _number(params, "temperature", 0.9, 0.0, 2.0)
    skip_impossible = params.get("skip_impossible", False) is True
    reasons = impossible_report(products)
    if reasons and not skip_impossible:  # checked before queueing; the table is checked again here
        raise ImpossibleConstraints(reasons, {p.id: p.where for p in products})
    total = len(products)
    written: list[dict[str, Any]] = []

    def done_one(copy: ProductCopy) -> None:  # between products: progress, and a cancel stops here
        written.append(product_copy_json(copy))
        lines = sum(len(p["lines"]) for p in written)
        ctx.progress(len(written) / total, f"{len(written)} of {total} products, {lines} lines")
        if len(written) < total:
            ctx.check_cancelled()

    ctx.progress(0.0, f"0 of {total} products")
    ctx.check_cancelled()
    write_copy(
        ctx.workspace,
        ctx.catalog,
        products,
        n=n,
        model=model,
        seed=seed,
        skip_impossible=skip_impossible,
        temperature=temperature,
        on_product=done_one,
    )
    dropped: Counter[str] = Counter()
    for product in written:
        dropped.update(product["dropped"])
    return {
        "model_version": written[0]["model_version"],
        "products": written,
        "lines": sum(len(p["lines"]) for p in written),
        "sampled": sum(p["sampled"] for p in written),
        "dropped": dict(dropped),
        "impossible": sorted(reasons) if skip_impossible else [],
        "seconds": round(sum(p["seconds"] for p in written), 3),
    }


HANDLERS: dict[str, Handler] = {
    "generate": run_generate,
    "evaluate": run_evaluate,
    "train": run_train,
    "deliver-webhooks": run_deliver_webhooks,
    "adcopy-generate": run_adcopy_generate,
}
if set(HANDLERS) != set(JOB_KINDS):  # pragma: no cover - a programming error, caught at import
    raise RuntimeError(f"job kinds {JOB_KINDS} and handlers {sorted(HANDLERS)} differ")
