"""The support agent queue, learning from agents, and the simulated agent: real catalog, real app.

The app is built from the tiny English + Chinese ticket file (BM25 only, every ticket indexed).
The queue tests run on both catalogs; improvement retrains the intent model and rebuilds the
index for real (a second or two), once per test, on SQLite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import select
from typer.testing import CliRunner

from apps.support_data import CN_ID, EMAIL, PHONE_CN, TICKETS, write_tickets
from genloop.apps.support.app import SupportApp, build_support
from genloop.apps.support.improve import answer_of_edit, improve_support
from genloop.apps.support.queue import TicketDecidedError, decide, get_ticket, list_tickets, submit
from genloop.apps.support.simulated_agent import SimulatedAgent, key_facts
from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import Base, FeedbackEvent, ModelVersion, Run, SupportTicket
from genloop.catalog.session import MIGRATIONS_DIR
from genloop.cli import support_cmd
from genloop.errors import GenloopError, NotFoundError
from genloop.workspace import Workspace

NEW_ANSWER = "Gift cards are redeemed under Account, Wallet, Redeem code; the balance never expires."


def built(workspace: Workspace, tmp_path: Path) -> SupportApp:
    tickets = write_tickets(tmp_path / "tickets.csv")
    return build_support(workspace, tickets=tickets, embeddings="none", heldout_percent=0)


def test_queue_stores_masked_tickets_and_one_decision_each(workspace: Workspace, tmp_path: Path) -> None:
    app, catalog = built(workspace, tmp_path), open_catalog(workspace.database_url)
    query = f"忘记密码无法登录，手机{PHONE_CN}，邮箱{EMAIL}，身份证号{CN_ID}"
    ticket = submit(workspace, catalog, app, query, actor="cli:test")
    assert (ticket.language, ticket.intent, ticket.status) == ("zh", "account", "queued")
    assert "[PHONE]" in ticket.query and "[EMAIL]" in ticket.query and "[CN_ID]" in ticket.query
    with catalog.session() as session:
        row = session.get(SupportTicket, ticket.id)
        assert row is not None
        everything = json.dumps(
            {c.name: str(getattr(row, c.name)) for c in SupportTicket.__table__.columns}, ensure_ascii=False
        )
    assert all(value not in everything for value in (PHONE_CN, EMAIL, CN_ID))
    stored = workspace.artifact(f".genloop/content/su/{ticket.content_item_id}.txt").read_text(
        encoding="utf-8"
    )
    assert stored.startswith("---\nAIGC:") and PHONE_CN not in stored  # the labelled pre-reply file

    with pytest.raises(GenloopError, match="an edit needs the corrected reply"):
        decide(catalog, ticket.id, "edit", actor="agent-1", text="  ")
    with pytest.raises(GenloopError, match="unknown decision 'approve'"):
        decide(catalog, ticket.id, "approve", actor="agent-1")
    with pytest.raises(NotFoundError, match="no support ticket"):
        decide(catalog, "f" * 32, "accept", actor="agent-1")
    assert get_ticket(catalog, ticket.id).status == "queued"

    edited = decide(
        catalog, ticket.id, "edit", actor="agent 1", text=f"请拨打{PHONE_CN}重置密码。", intent="account"
    )
    assert (
        edited.status == "edited" and edited.final_reply == "请拨打[PHONE]重置密码。"
    )  # agents' PII masked too
    with pytest.raises(TicketDecidedError, match="already edited by agent 1"):
        decide(catalog, ticket.id, "accept", actor="agent-2")
    with catalog.session() as session:
        events = session.scalars(select(FeedbackEvent)).all()
    assert [(e.kind, e.viewer_id, e.text) for e in events] == [
        ("edit", "agent:agent_1", "请拨打[PHONE]重置密码。")
    ]
    assert [t.id for t in list_tickets(catalog, "edited")] == [ticket.id] and list_tickets(catalog) == []


def test_migration_0007_matches_the_models_and_downgrades(catalog: Catalog) -> None:
    with catalog.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diffs if "support" in str(d)] == []
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with catalog.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0006")
        assert "support_tickets" not in sa.inspect(connection).get_table_names()
        command.upgrade(cfg, "head")
        assert "support_tickets" in sa.inspect(connection).get_table_names()


def test_improve_learns_an_edited_answer_and_a_corrected_intent(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    workspace = sqlite_workspace
    app, catalog = built(workspace, tmp_path), open_catalog(workspace.database_url)
    question = "How do I redeem a gift card?"
    before = app.ask(question)
    assert NEW_ANSWER not in before.reply.body  # the knowledge base has no gift-card answer
    ticket = submit(workspace, catalog, app, question, actor="cli:test")
    agent_reply = f"Hello,\n\n{NEW_ANSWER}\n\nBest regards,\nCustomer support"  # the agent kept the template
    decide(catalog, ticket.id, "edit", actor="agent", text=agent_reply, intent="gift cards")
    accepted = submit(workspace, catalog, app, "my printer is not printing", actor="cli:test")
    decide(catalog, accepted.id, "accept", actor="agent")

    result = improve_support(workspace, catalog)
    assert (result.parent_model_version_id, result.model_version_id) == ("support-v1", "support-v2")
    assert (result.edited, result.accepted, len(result.feedback_events)) == (1, 1, 2)
    assert "gift cards" in result.app.intents.labels  # a new intent, from the agent's correction
    after = SupportApp.load(workspace).ask("how can I redeem my gift card")
    assert NEW_ANSWER in after.reply.body and after.structured.intent == "gift cards"
    assert after.hits[0].entry.source.startswith("support-feedback:")
    with catalog.session() as session:
        version = session.get(ModelVersion, "support-v2")
        assert version is not None and version.parent_id == "support-v1"
        run = session.get(Run, version.run_id)
        assert run is not None and run.config["feedback_events"] == result.feedback_events
    assert len(result.app.entries) == len(TICKETS) + 2


def test_improve_with_nothing_decided_says_what_to_do(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    built(sqlite_workspace, tmp_path)
    with pytest.raises(GenloopError, match="no accepted or edited support tickets") as caught:
        improve_support(sqlite_workspace, open_catalog(sqlite_workspace.database_url))
    assert caught.value.hint and "genloop support decide" in caught.value.hint


def test_template_words_are_stripped_from_edits() -> None:
    assert answer_of_edit("您好！\n\n请重启路由器。\n\n祝好！\n客服团队") == "请重启路由器。"
    assert answer_of_edit("Hello,\n\nWe have noted these details: order A1.\n\nRestart it.") == "Restart it."
    assert answer_of_edit("Just this.") == "Just this."


def test_simulated_agent_accepts_key_facts_and_edits_otherwise() -> None:
    agent = SimulatedAgent()
    answer = "Refunds go back to the original payment method within 5 working days."
    assert key_facts(answer) >= {"refunds", "original", "payment", "5", "working", "days"}
    judged = agent.judge(f"Hello,\n\nHere is what we found:\n\n{answer}\n\nBest regards", answer)
    assert (judged.decision, judged.coverage, judged.reply) == ("accept", 1.0, None)
    wrong = agent.judge("Hello, track the parcel with the link in your e-mail.", answer)
    assert wrong.decision == "edit" and wrong.reply == answer and wrong.coverage < 0.5
    chinese = "请在登录页点击忘记密码，按短信验证码重置。"
    assert agent.judge(f"您好！\n\n{chinese}", chinese).decision == "accept"
    assert agent.judge("您好！检查纸张和墨盒。", chinese).decision == "edit"
    assert agent.judge("Yes, sure.", "Yes.").decision == "accept"  # no key facts: containment


# ---- CLI ------------------------------------------------------------------------------------------


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """genloop (only the verb under test)."""

    support_cmd.register(app)
    return app


def run(*args: str) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(cli(), ["support", *args], terminal_width=200)
    return result.exit_code, result.stdout, result.stderr, result.exception


def test_cli_submit_queue_decide_improve(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    ws = str(sqlite_workspace.root)
    tickets = write_tickets(tmp_path / "tickets.csv")
    code, _, stderr, error = run("build", "--tickets", str(tickets), "--embeddings", "none", "-w", ws)
    assert code == 0 and error is None and "(support-v1)" in stderr, stderr
    code, stdout, stderr, error = run(
        "submit", f"How do I redeem a gift card? mail {EMAIL}", "--json", "-w", ws
    )
    assert code == 0 and error is None, stderr
    ticket = json.loads(stdout)
    assert ticket["status"] == "queued" and EMAIL not in stdout and "[EMAIL]" in ticket["query"]
    code, stdout, _, _ = run("queue", "--json", "-w", ws)
    assert [t["id"] for t in json.loads(stdout)] == [ticket["id"]]
    code, _, stderr, error = run(
        "decide", ticket["id"], "edit", "--reply", NEW_ANSWER, "--intent", "gift cards", "-w", ws
    )
    assert code == 0 and error is None and "edited" in stderr, stderr
    _, _, _, error = run("decide", ticket["id"], "accept", "-w", ws)
    assert isinstance(error, TicketDecidedError)
    _, _, _, error = run("decide", "nope", "accept", "-w", ws)
    assert isinstance(error, NotFoundError)
    code, stdout, stderr, error = run("improve", "--json", "-w", ws)
    assert code == 0 and error is None, stderr
    summary = json.loads(stdout)
    assert (summary["model_version"], summary["parent"], summary["edited"]) == ("support-v2", "support-v1", 1)
    code, stdout, _, _ = run("ask", "redeem gift card", "--json", "-w", ws)
    assert NEW_ANSWER in json.loads(stdout)["pre_reply"]["body"]
    _, stdout, _, _ = run("decide", "--help")
    assert "Examples" in stdout and "genloop support decide" in stdout
