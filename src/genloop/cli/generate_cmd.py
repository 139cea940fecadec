"""`genloop generate`: the pipeline's generate stage, or ad hoc from any model version."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from genloop.cli.common import DryRunOption, WorkspaceOption, examples, open_context
from genloop.cli.run_cmd import print_stage
from genloop.errors import GenloopError
from genloop.generate.engine import GenerationReport, GenerationRequest, generate, plan
from genloop.generate.guidance import MAX_BEST_OF, resolve_reward
from genloop.pipeline.runner import run_pipeline
from genloop.progress import say


def parse_params(values: list[str] | None) -> dict[str, Any]:
    """`key=value` pairs; a value is read as JSON when it parses (0.8, 40, ["\\n"]), else a string."""
    params: dict[str, Any] = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise GenloopError(f"--param {value!r} is not key=value", hint="e.g. --param temperature=0.8")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return params


def _print_report(report: GenerationReport, as_json: bool) -> None:
    rows = [
        {
            "id": item.id,
            "condition": item.condition,
            "seed": item.seed,
            "status": item.status,
            "new": item.created,
            "path": str(item.path),
        }
        for item in report.items
    ]
    summary = {
        "model_version": report.plan.version_id,
        "request_id": report.plan.request_id,
        "new": report.created,
        "existing": report.existing,
        "to_review": report.to_review,
        "seconds": round(report.seconds, 3),
        "items_per_second": round(report.items_per_second, 2),
    }
    if as_json:
        typer.echo(json.dumps({"items": rows, "summary": summary}, ensure_ascii=False, indent=2))
        return
    for row in rows:
        condition = json.dumps(row["condition"], ensure_ascii=False)
        typer.echo(
            f"{row['id']}\t{condition}\t{row['status']}\t{'new' if row['new'] else 'existing'}\t{row['path']}"
        )
    say(
        f"{report.created:,} new, {report.existing:,} existing, {report.to_review:,} sent to review "
        f"({report.items_per_second:.1f} items/s) from {report.plan.version_id}"
    )
    if report.to_review:
        say("[yellow]items waiting for review:[/yellow] genloop review ls")


def generate_command(
    workspace: WorkspaceOption = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Generate ad hoc from this version (id, name@alias or name)."),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="Class to draw (image/music models; repeatable)."),
    ] = None,
    prompt: Annotated[
        list[str] | None, typer.Option("--prompt", "-p", help="Prompt to continue (text models; repeatable).")
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", "-n", help="Items per class (image/music) or per prompt (text); default [generate]."
        ),
    ] = None,
    draw: Annotated[
        int | None,
        typer.Option(
            min=1, help="Conditional image/music models: N items, classes drawn from the model's class prior."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Request seed; same request, same bytes.")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", help="Sampling parameter key=value (temperature, top_k, top_p, steps…; repeatable)."
        ),
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Text/music models: length limit in tokens.")
    ] = None,
    channel: Annotated[
        str | None, typer.Option(help="Channel whose policy applies (default [generate].channel).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Items sampled per batch (default 64).")
    ] = None,
    best_of: Annotated[
        int | None,
        typer.Option(
            "--best-of",
            min=1,
            max=MAX_BEST_OF,
            help="Image models: keep the best of N candidates per item under a reward model "
            "trained on feedback (N × the sampling cost).",
        ),
    ] = None,
    reward: Annotated[
        str | None,
        typer.Option(help="With --best-of: the feedback dataset id of the reward model (default: newest)."),
    ] = None,
    executor: Annotated[str, typer.Option(help="`local` (this process) or `ray` (an actor pool).")] = "local",
    workers: Annotated[int, typer.Option(min=1, help="Ray actors (with --executor ray).")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Re-run the pipeline stage.")] = False,
    dry_run: DryRunOption = False,
) -> None:
    """Generate labelled content: the pipeline stage, or ad hoc with --model.

    Each item is sampled, post-processed, checked and labelled under its channel's policy,
    stored under .genloop/content/ and catalogued. Items that fail a safety check wait for
    `genloop review`. Re-running a request skips the items already made.
    """
    ctx = open_context(workspace)
    if model is None:
        ad_hoc: tuple[object, ...] = (label, prompt, count, draw, seed, param, max_new_tokens, channel)
        ad_hoc += (batch_size, best_of, reward)
        if any(value is not None for value in ad_hoc) or executor != "local":
            raise GenloopError(
                "request options (--label, --prompt, --count, --param, --executor …) need --model",
                hint="without --model, `genloop generate` runs the pipeline stage as [generate] says",
            )
        run_pipeline(
            ctx.workspace,
            ctx.catalog,
            until="generate",
            force=["generate"] if force else (),
            dry_run=dry_run,
            report=print_stage,
        )
        return
    if count is not None and count < 1:
        raise GenloopError(f"--count must be ≥ 1 (got {count})", hint="ask for at least one item")
    if reward is not None and best_of is None:
        raise GenloopError("--reward names the reward model of --best-of", hint="add --best-of N (e.g. 4)")
    base = GenerationRequest.from_config(ctx.config.generate, model=model)
    guidance: dict[str, Any] = {}
    if best_of is not None and best_of > 1:  # in the params: part of each item's content id
        guidance = {"best_of": best_of, "reward": resolve_reward(ctx.workspace, reward)}
    request = GenerationRequest(
        model=model,
        per_class=count or base.per_class,
        labels=label or None,
        prompts=prompt or None,
        count=count or base.count,
        max_new_tokens=max_new_tokens or base.max_new_tokens,
        params={**base.params, **parse_params(param), **guidance},
        seed=base.seed if seed is None else seed,
        producer=base.producer,
        channel=channel or base.channel,
        draw=draw,
    )
    if executor not in ("local", "ray"):
        raise GenloopError(f"unknown executor {executor!r}", hint="use --executor local or --executor ray")
    if dry_run:
        item_plan = plan(ctx.workspace, ctx.catalog, request, ctx.config)
        conditions = sorted({json.dumps(i.condition, ensure_ascii=False) for i in item_plan.items})
        say(
            f"would generate {len(item_plan.items):,} {item_plan.modality} items from {item_plan.version_id} "
            f"(conditions: {', '.join(conditions)}; seed {request.seed}; channel {request.channel})"
        )
        return
    report = generate(
        ctx.workspace,
        ctx.catalog,
        request,
        config=ctx.config,
        batch_size=batch_size,
        executor="ray" if executor == "ray" else "local",
        workers=workers,
    )
    _print_report(report, as_json)


def register(app: typer.Typer) -> None:
    app.command(
        name="generate",
        epilog=examples(
            "genloop generate",
            "genloop generate --model digits@champion --label 3 --label 8 -n 4",
            "genloop generate --model fashion@challenger --draw 64",
            "genloop generate --model fashion --draw 64 --best-of 4     # reward-guided",
            "genloop generate --model digits-v2 --seed 7 --param temperature=0.8 --json",
            "genloop generate --model replies -p '您好，' -p 'Thanks for' -n 8 --param top_k=40",
            "genloop generate --model digits -n 1000 --executor ray --workers 4",
        ),
    )(generate_command)
