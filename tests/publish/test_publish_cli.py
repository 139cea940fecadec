"""`genloop publish`: items by id or prefix on a channel with an arm, held items reported,
the delivery queue listed, replay needing ids or --dead."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from genloop.catalog.models import Publication
from genloop.cli.main import app
from genloop.errors import GenloopError
from genloop.generate.review import reject
from genloop.workspace import DATABASE_URL_ENV
from publish.conftest import CHANNELS_TOML, make_items

WEBHOOK_TOML = (
    CHANNELS_TOML
    + """
[channels.cms]
kind = "webhook"
url = "http://127.0.0.1:9/hook"
secret_env = "GENLOOP_TEST_CLI_SECRET"
max_attempts = 1
timeout_seconds = 0.5
"""
)


def test_publish_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    items = make_items(tmp_path / "ws", WEBHOOK_TOML)
    ws = ["--workspace", str(items.workspace.root)]
    first, second, third = items.content_ids
    reject(items.catalog, [third], reason="no")
    runner = CliRunner()

    published = runner.invoke(
        app, ["publish", first[:10], second, third, "--channel", "cms", "--arm", "B", *ws]
    )
    assert published.exit_code == 0, published.output
    assert f"{third}\theld: rejected" in published.output
    with items.catalog.session() as session:
        rows = session.scalars(select(Publication)).all()
    assert sorted(r.content_item_id for r in rows) == sorted([first, second]) and {r.arm for r in rows} == {
        "B"
    }
    assert all(f"{r.content_item_id}\t{r.id}\tcms" in published.output for r in rows)

    pending = runner.invoke(app, ["publish", "deliveries", "--status", "pending", *ws])
    assert pending.exit_code == 0 and pending.output.count("\tpending\tcms\tattempts 0") == 2

    # nothing listens on port 9: one attempt each (max_attempts = 1), then dead
    monkeypatch.setenv("GENLOOP_TEST_CLI_SECRET", "x" * 32)
    delivered = runner.invoke(app, ["publish", "deliver", *ws])
    assert delivered.exit_code == 0, delivered.output
    dead = runner.invoke(app, ["publish", "deliveries", "--status", "dead", "--json", *ws])
    assert dead.exit_code == 0 and dead.output.count('"status": "dead"') == 2

    replayed = runner.invoke(app, ["publish", "replay", "--dead", *ws])
    assert replayed.exit_code == 0 and replayed.output.count("\tpending") == 2
    refused = runner.invoke(app, ["publish", "replay", *ws])
    assert isinstance(refused.exception, GenloopError) and "--dead" in str(refused.exception)
    bad = runner.invoke(app, ["publish", first, "--channel", "../x", *ws])
    assert isinstance(bad.exception, GenloopError) and "invalid channel name" in str(bad.exception)
