"""`genloop support`: customer-service pre-replies (build the knowledge base, ask, evaluate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genloop.apps.support.app import TOP_K, Answer, SupportApp, build_support
from genloop.apps.support.evaluation import evaluate_app, read_slot_examples
from genloop.apps.support.knowledge import HELDOUT_PERCENT
from genloop.apps.support.labelled import SLOT_EXAMPLES
from genloop.apps.support.retrieve import EMBEDDINGS, MODES
from genloop.cli.common import WorkspaceOption, examples
from genloop.errors import GenloopError
from genloop.progress import say
from genloop.workspace import Workspace

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]


def _workspace(path: Path | None) -> Workspace:
    workspace = Workspace(path.resolve()) if path else Workspace.find()
    _ = workspace.config  # a bad genloop.toml is reported before any work starts
    return workspace


def build_command(
    tickets: Annotated[
        Path | None,
        typer.Option(
            "--tickets",
            help="CSV/JSONL of resolved tickets: question, answer [, intent, language, "
            "product, id]. Default: the built-in chatterbot-corpus (English + Chinese).",
            show_default=False,
        ),
    ] = None,
    embeddings: Annotated[
        str, typer.Option("--embeddings", help=f"Dense retrieval beside BM25: {', '.join(EMBEDDINGS)}.")
    ] = "auto",
    heldout_percent: Annotated[
        int,
        typer.Option(
            "--heldout-percent",
            min=0,
            max=90,
            help="Share of questions (by stable hash) kept out of training and of the index's questions, "
            "for `support eval`; 0 indexes every question (production).",
        ),
    ] = HELDOUT_PERCENT,
    workspace: WorkspaceOption = None,
) -> None:
    """Build the knowledge base, the intent model and the retrieval index of this workspace."""
    if tickets is not None and not tickets.is_file():
        raise GenloopError(
            f"ticket file {tickets} does not exist", hint="give a CSV or JSONL of resolved tickets"
        )
    app = build_support(
        _workspace(workspace), tickets=tickets, embeddings=embeddings, heldout_percent=heldout_percent
    )
    manifest = app.manifest
    say(
        f"[green]✓[/green] support app {manifest['version']}: {manifest['entries']} entries "
        f"({manifest['train']} train, {manifest['heldout']} held out), {len(manifest['intents'])} intents, "
        f"languages {', '.join(manifest['languages']) or '(unknown)'}"
    )
    say(f"retrieval: {manifest['embeddings_note']}")
    say('next: genloop support ask "my laptop screen is black"  ·  genloop support eval')


def _print_answer(answer: Answer, console: Console) -> None:
    structure = answer.structured.to_json()
    table = Table("field", "value", title="structured query")
    table.add_row("language", f"{structure['language']} ({structure['language_score']:.2f})")
    table.add_row("intent", f"{structure['intent']} ({structure['intent_confidence']:.0%})")
    for slot in structure["slots"]:
        table.add_row(f"slot {slot['type']}", escape(slot["value"]))
    console.print(table)
    sources = Table("rank", "score", "method", "intent", "question", "answer", title="sources")
    for hit in answer.hits:
        sources.add_row(
            str(hit.rank),
            f"{hit.score:.3f}",
            hit.method,
            hit.entry.intent,
            escape(hit.entry.question[:60]),
            escape(hit.entry.answer[:60]),
        )
    console.print(sources)
    verdicts = ", ".join(
        f"{v.check} {'pass' if v.passed else 'FAIL: ' + v.reason}" for v in answer.reply.verdicts
    )
    console.print(f"[bold]pre-reply[/bold] ({answer.reply.status}; {escape(verdicts)})")
    console.print(escape(answer.reply.text), highlight=False, soft_wrap=True)


def ask_command(
    query: Annotated[str, typer.Argument(help="The customer's message.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=50, help="Sources to retrieve.")] = TOP_K,
    mode: Annotated[
        str,
        typer.Option(
            "--mode", help=f"Ranking: {', '.join(MODES)} (auto: embeddings where built, else BM25)."
        ),
    ] = "auto",
    as_json: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Structure a query, retrieve sources and draft the labelled pre-reply (PII never echoed)."""
    if mode not in MODES:
        raise GenloopError(f"unknown mode {mode!r}", hint=f"--mode takes one of: {', '.join(MODES)}")
    answer = SupportApp.load(_workspace(workspace)).ask(query, k=top_k, mode=mode)
    if as_json:
        typer.echo(json.dumps(answer.to_json(), ensure_ascii=False, indent=2))
        return
    _print_answer(answer, Console())


def _print_eval(report: dict[str, Any], console: Console) -> None:
    intent, slots = report["intent"], report["slots"]
    table = Table(
        "measure", "value", "n", title=f"support app {report['version']} ({report['entries']} entries)"
    )
    if intent["accuracy"] is not None:
        table.add_row("intent accuracy (held out)", f"{intent['accuracy']:.1%}", str(intent["n"]))
        table.add_row("  majority-class baseline", f"{intent['majority_baseline']:.1%}", str(intent["n"]))
    table.add_row(
        "slot F1 (micro)",
        f"{slots['f1']:.3f}  (P {slots['precision']:.3f}, R {slots['recall']:.3f})",
        str(slots["gold"]),
    )
    for name, result in report["retrieval"].items():
        for mode in MODES:
            if mode in result:
                scores = result[mode]
                table.add_row(
                    f"{name}: {mode} hit@1 / hit@5",
                    f"{scores['hit@1']:.1%} / {scores['hit@5']:.1%}",
                    str(result["n"]),
                )
        table.add_row(f"{name}: chance hit@5", f"{result['chance@5']:.1%}", str(result["n"]))
    console.print(table)


def eval_command(
    slots: Annotated[
        Path | None,
        typer.Option(
            "--slots",
            help='JSONL slot set: {"text": ..., "slots": [["ORDER", "A1"], ...]} a line '
            "(default: the built-in English + Chinese set).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Intent accuracy, slot F1 and retrieval hit@1/hit@5 on held-out queries."""
    if slots is not None and not slots.is_file():
        raise GenloopError(f"slot set {slots} does not exist", hint="give a JSONL file, or leave --slots out")
    app = SupportApp.load(_workspace(workspace))
    report = evaluate_app(app, read_slot_examples(slots) if slots else SLOT_EXAMPLES)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    _print_eval(report, Console())


def register(app: typer.Typer) -> None:
    support = typer.Typer(
        name="support",
        help="Customer-service pre-replies: query → structured data → sources → labelled pre-reply.",
        no_args_is_help=True,
    )
    support.command(
        "build",
        epilog=examples(
            "genloop support build",
            "genloop support build --embeddings none",
            "genloop support build --tickets resolved_tickets.csv --heldout-percent 0",
        ),
    )(build_command)
    support.command(
        "ask",
        epilog=examples(
            'genloop support ask "My laptop screen is black, order #A12345"',
            'genloop support ask "我的订单号E2024050112还没发货" --json',
            'genloop support ask "I forgot my password" --mode bm25 -k 3',
        ),
    )(ask_command)
    support.command(
        "eval",
        epilog=examples(
            "genloop support eval",
            "genloop support eval --json",
            "genloop support eval --slots my_labelled_slots.jsonl",
        ),
    )(eval_command)
    app.add_typer(support)
