"""`genloop support`: customer-service pre-replies.

build / ask / eval         the knowledge base, intent model and index; one query; the numbers
submit / queue / decide    the agent queue in the catalog (the console's Support page, the API)
improve                    learn from the agents' accepted and edited replies: a new app version
"""

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
from genloop.apps.support.generator import generator_from_config
from genloop.apps.support.improve import improve_support
from genloop.apps.support.knowledge import HELDOUT_PERCENT
from genloop.apps.support.labelled import SLOT_EXAMPLES
from genloop.apps.support.queue import STATUSES, Ticket, decide, list_tickets, submit
from genloop.apps.support.registration import ensure_model_version
from genloop.apps.support.retrieve import EMBEDDINGS, MODES
from genloop.catalog import Catalog, open_catalog
from genloop.cli.common import WorkspaceOption, examples, find_workspace
from genloop.errors import GenloopError
from genloop.models.versions import current_actor
from genloop.progress import say
from genloop.workspace import Workspace

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
GeneratorOption = Annotated[
    str | None,
    typer.Option(
        "--generator",
        help="Compose with the template, or lm: the template plus a sentence by --model, falling back "
        "to the template when it fails a guard rail. Default: generator under \\[support] in genloop.toml.",
        show_default=False,
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="The LM of --generator lm: a gpt or hf-causal-lm version (id, NAME@alias or NAME). "
        "Default: generator_model under \\[support].",
        show_default=False,
    ),
]


def _workspace(path: Path | None) -> Workspace:
    workspace = find_workspace(path)
    _ = workspace.config  # a bad genloop.toml is reported before any work starts
    return workspace


def _catalog(workspace: Workspace) -> Catalog:
    return open_catalog(workspace.database_url)


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
    model_version = ensure_model_version(app.workspace, _catalog(app.workspace), app)
    say(
        f"[green]✓[/green] support app {manifest['version']} ({model_version}): "
        f"{manifest['entries']} entries "
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
    reply = answer.reply
    composed = reply.generator + (f": {reply.fallback_reason}" if reply.fallback_reason else "")
    if reply.generator_model:
        composed += f", {reply.generator_model}"
    console.print(f"[bold]pre-reply[/bold] ({reply.status}; {escape(verdicts)}; {escape(composed)})")
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
    generator: GeneratorOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Structure a query, retrieve sources and draft the labelled pre-reply (PII never echoed)."""
    if mode not in MODES:
        raise GenloopError(f"unknown mode {mode!r}", hint=f"--mode takes one of: {', '.join(MODES)}")
    ws = _workspace(workspace)
    app = SupportApp.load(ws)
    lm = generator_from_config(ws, ws.config.support, generator=generator, model=model)
    answer = app.ask(query, k=top_k, mode=mode, generator=lm)
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


def _print_tickets(tickets: list[Ticket], console: Console) -> None:
    table = Table(
        "ticket", "status", "lang", "intent", "query (PII masked)", "pre-reply", title="support queue"
    )
    for ticket in tickets:
        table.add_row(
            ticket.id,
            ticket.status,
            ticket.language,
            f"{ticket.intent} ({ticket.intent_confidence:.0%})",
            escape(ticket.query[:60]),
            escape((ticket.final_reply or ticket.pre_reply).replace("\n", " ")[:60]),
        )
    console.print(table)


def _ticket_json(ticket: Ticket) -> dict[str, Any]:
    fields = {name: getattr(ticket, name) for name in Ticket.__dataclass_fields__}
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in fields.items()}


def submit_command(
    query: Annotated[str, typer.Argument(help="The customer's message.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=20, help="Sources to retrieve.")] = TOP_K,
    generator: GeneratorOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Put a customer query in the agent queue with its pre-reply (only the masked query is stored)."""
    ws = _workspace(workspace)
    app = SupportApp.load(ws)
    lm = generator_from_config(ws, ws.config.support, generator=generator, model=model)
    actor = f"cli:{current_actor()}"
    ticket = submit(ws, _catalog(ws), app, query, actor=actor, k=top_k, generator=lm)
    if as_json:
        typer.echo(json.dumps(_ticket_json(ticket), ensure_ascii=False, indent=2))
        return
    _print_tickets([ticket], Console())
    say(f"next: genloop support decide {ticket.id} accept   (or edit --reply TEXT, or reject)")


def queue_command(
    status: Annotated[
        str, typer.Option("--status", help=f"Which tickets: {', '.join(STATUSES)} or any.")
    ] = "queued",
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    as_json: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """The agent queue, oldest first: masked query, language, intent, pre-reply."""
    ws = _workspace(workspace)
    tickets = list_tickets(_catalog(ws), None if status == "any" else status, limit=limit)
    if as_json:
        typer.echo(json.dumps([_ticket_json(t) for t in tickets], ensure_ascii=False, indent=2))
        return
    _print_tickets(tickets, Console())


def decide_command(
    ticket_id: Annotated[str, typer.Argument(help="The ticket id (from `genloop support queue`).")],
    decision: Annotated[str, typer.Argument(help="accept, edit or reject.")],
    reply: Annotated[
        str | None, typer.Option("--reply", help="edit: the corrected reply.", show_default=False)
    ] = None,
    intent: Annotated[
        str | None, typer.Option("--intent", help="accept/edit: confirm or correct the intent.")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="reject: why.", show_default=False)] = None,
    as_json: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Decide a queued ticket as an agent: accept (like), edit (edit event) or reject (dislike)."""
    ws = _workspace(workspace)
    ticket = decide(
        _catalog(ws),
        ticket_id,
        decision,
        actor=f"cli:{current_actor()}",
        text=reply,
        intent=intent,
        note=reason,
    )
    if as_json:
        typer.echo(json.dumps(_ticket_json(ticket), ensure_ascii=False, indent=2))
        return
    say(f"[green]✓[/green] ticket {ticket.id} {ticket.status} (feedback event {ticket.feedback_event_id})")


def improve_command(as_json: JsonOption = False, workspace: WorkspaceOption = None) -> None:
    """Learn from accepted and edited tickets: retrain the intent model, rebuild the index, new version."""
    ws = _workspace(workspace)
    result = improve_support(ws, _catalog(ws))
    summary = {
        "model_version": result.model_version_id,
        "parent": result.parent_model_version_id,
        "app_version": result.app.version,
        "edited": result.edited,
        "accepted": result.accepted,
        "feedback_events": result.feedback_events,
        "entries": len(result.app.entries),
    }
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    say(
        f"[green]✓[/green] {result.model_version_id} (parent {result.parent_model_version_id}): learned "
        f"{result.edited} edited and {result.accepted} accepted replies "
        f"({len(result.feedback_events)} feedback events), {len(result.app.entries)} entries"
    )


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
            'genloop support ask "I was charged twice" --generator lm --model support-lm@champion',
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
    support.command(
        "submit",
        epilog=examples(
            'genloop support submit "My laptop screen is black, order #A12345"',
            'genloop support submit "我的快递还没到，手机13812345678" --json',
            'genloop support submit "Where is my parcel?" --generator lm --model support-lm@champion',
        ),
    )(submit_command)
    support.command(
        "queue",
        epilog=examples("genloop support queue", "genloop support queue --status any --json"),
    )(queue_command)
    support.command(
        "decide",
        epilog=examples(
            "genloop support decide 3f2a…9c accept",
            'genloop support decide 3f2a…9c edit --reply "Hold the power button for 10 s." --intent hardware',
            'genloop support decide 3f2a…9c reject --reason "wrong product"',
        ),
    )(decide_command)
    support.command(
        "improve",
        epilog=examples("genloop support improve", "genloop support improve --json"),
    )(improve_command)
    app.add_typer(support)
