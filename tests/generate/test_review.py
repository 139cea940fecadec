"""The review queue: what fails a check (or a reviewing channel) waits for a person; approve
makes it publishable, reject never; every transition is recorded; the CLI drives it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import ContentItem, Publication
from genloop.cli.main import app
from genloop.errors import GenloopError
from genloop.generate.engine import GenerationReport, GenerationRequest, generate
from genloop.generate.review import approve, list_items, reject, show
from genloop.publish import publish_content, publish_items
from genloop.publish.channels.registry import get_channel
from genloop.workspace import Workspace
from support.tiny_generators import register_tiny

REVIEWING = """
[project]
name = "press"

[channels.gallery]
review = "always"
"""


@pytest.fixture
def held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, Catalog, GenerationReport]:
    """Six items generated on a channel whose policy sends everything to review."""
    monkeypatch.delenv("GENLOOP_DATABASE_URL", raising=False)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "genloop.toml").write_text(REVIEWING, encoding="utf-8")
    workspace = Workspace(tmp_path / "ws")
    catalog = open_catalog(workspace.database_url)
    version = register_tiny(workspace, catalog, "vae", tmp_path)
    report = generate(workspace, catalog, GenerationRequest(model=version, per_class=2, seed=1))
    return workspace, catalog, report


def _status(catalog: Catalog, content_id: str) -> str:
    with catalog.session() as session:
        row = session.get(ContentItem, content_id)
        assert row is not None
        return row.status


def test_items_in_review_are_never_published_until_approved(
    held: tuple[Workspace, Catalog, GenerationReport],
) -> None:
    _, catalog, report = held
    ids = [item.id for item in report]
    assert report.to_review == 6 and {item.id for item in list_items(catalog)} == set(ids)
    outcome = publish_content(catalog, ids)
    assert outcome.publications == [] and set(outcome.held) == set(ids)
    with pytest.raises(GenloopError, match="cannot be published"):  # the channel refuses too
        get_channel("gallery").publish(catalog, ids[0])

    approve(catalog, ids[:2], note="looked fine", actor="ana")
    reject(catalog, [ids[2]], reason="looks like a real person", actor="bo")
    published = publish_items(catalog, ids)
    assert len(published) == 2
    with catalog.session() as session:
        assert sorted(session.scalars(select(Publication.content_item_id))) == sorted(ids[:2])
    assert [_status(catalog, i) for i in ids[:4]] == ["published", "published", "rejected", "review"]
    assert publish_items(catalog, ids) == published  # idempotent, still nothing held is sent

    rejected = show(catalog, ids[2])
    assert [(e["from"], e["to"], e["actor"], e["note"]) for e in rejected.review_log] == [
        ("review", "rejected", "bo", "looks like a real person")
    ]
    approved = show(catalog, ids[0][:8])  # a unique prefix is enough
    assert [(e["from"], e["to"]) for e in approved.review_log] == [("review", "approved")]


def test_transitions_are_checked(held: tuple[Workspace, Catalog, GenerationReport]) -> None:
    _, catalog, report = held
    first, second = report.items[0].id, report.items[1].id
    with pytest.raises(GenloopError, match="needs a reason"):
        reject(catalog, [first], reason="  ")
    approve(catalog, [first])
    with pytest.raises(GenloopError, match="is approved; it cannot become approved"):
        approve(catalog, [second, first])
    assert _status(catalog, second) == "review"  # all or nothing
    reject(catalog, [first], reason="second thoughts")
    approve(catalog, [first], note="appeal upheld")
    assert [e["to"] for e in show(catalog, first).review_log] == ["approved", "rejected", "approved"]
    with pytest.raises(GenloopError, match="not in the catalog"):
        show(catalog, "0000000000")
    with pytest.raises(GenloopError, match="unknown status"):
        list_items(catalog, "pending")


def test_review_commands(held: tuple[Workspace, Catalog, GenerationReport]) -> None:
    workspace, catalog, report = held
    runner = CliRunner()
    ws = ["--workspace", str(workspace.root)]
    listed = runner.invoke(app, ["review", "ls", *ws])
    assert listed.exit_code == 0, listed.output
    assert all(item.id in listed.stdout for item in report)
    first, second = report.items[0].id, report.items[1].id
    shown = runner.invoke(app, ["review", "show", first, *ws])
    assert shown.exit_code == 0 and "review" in shown.stdout and "verdicts" in shown.stdout
    approved = runner.invoke(app, ["review", "approve", first, "--note", "ok", *ws])
    assert approved.exit_code == 0 and f"{first}\tapproved" in approved.stdout
    refused = runner.invoke(app, ["review", "reject", second, *ws])
    assert refused.exit_code != 0  # --reason is required
    rejected = runner.invoke(app, ["review", "reject", second, "--reason", "off-brand", *ws])
    assert rejected.exit_code == 0
    assert _status(catalog, first) == "approved" and _status(catalog, second) == "rejected"
    still = runner.invoke(app, ["review", "ls", "--status", "review", *ws])
    assert first not in still.stdout and second not in still.stdout
    history = runner.invoke(app, ["review", "show", second, *ws])
    assert "review → rejected" in history.stdout and "off-brand" in history.stdout
