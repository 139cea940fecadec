"""`genloop feedback stats | import | export | pairs` on a real workspace (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import ContentItem, ModelVersion, Publication, Run
from genloop.cli import feedback_cmd
from genloop.feedback.events import record_feedback
from genloop.workspace import Workspace


def feedback_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """genloop (only the verb under test)."""

    feedback_cmd.register(app)
    return app


def seed(catalog: Catalog) -> None:
    with catalog.session() as session:
        session.add(Run(id="run", model_name="digits", family="vae", config={}, path="/x"))
        session.flush()
        session.add(
            ModelVersion(id="digits-v1", name="digits", version=1, family="vae", run_id="run", path="/x")
        )
        session.flush()
        for n in range(2):
            session.add(
                ContentItem(
                    id=f"item-{n}",
                    model_version_id="digits-v1",
                    modality="image",
                    path="/x.png",
                    condition={},
                    seed=n,
                    params={},
                    labels={},
                )
            )
            session.flush()
            session.add(Publication(id=f"pub-{n}", content_item_id=f"item-{n}", channel="gallery"))
    for n, kind in enumerate(["like", "like", "dislike"]):
        record_feedback(catalog, publication_id=f"pub-{n % 2}", kind=kind, viewer_id=f"viewer-{n}")


@pytest.fixture
def seeded_workspace(workspace: Workspace) -> Path:
    seed(open_catalog(workspace.database_url))
    return workspace.root


def test_stats_table(seeded_workspace: Path) -> None:
    result = CliRunner().invoke(feedback_app(), ["feedback", "stats", "-w", str(seeded_workspace)])
    assert result.exit_code == 0, result.output
    assert "digits-v1" in result.output
    assert "66.7%" in result.output


def test_stats_json(seeded_workspace: Path) -> None:
    result = CliRunner().invoke(feedback_app(), ["feedback", "stats", "--json", "-w", str(seeded_workspace)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 1
    row = rows[0]
    assert (row["model_version_id"], row["publications"], row["likes"], row["dislikes"]) == (
        "digits-v1",
        2,
        2,
        1,
    )
    assert row["like_rate"] == pytest.approx(2 / 3)
    low, high = row["like_rate_interval"]
    assert 0 < low < 2 / 3 < high < 1


def test_stats_by_unknown_grouping_is_a_usage_error(seeded_workspace: Path) -> None:
    result = CliRunner().invoke(
        feedback_app(), ["feedback", "stats", "--by", "viewer", "-w", str(seeded_workspace)]
    )
    assert result.exit_code == 2
    assert "model_version, day, condition, channel, arm" in result.output


def test_import_export_and_pairs(seeded_workspace: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "ads.csv"
    csv_file.write_text("Creative_ID,Impr,Clicks\npub-0,8,2\nnope,1,1\n", encoding="utf-8")
    args = [
        "feedback",
        "import",
        str(csv_file),
        "--map",
        "creative=Creative_ID,impressions=Impr,clicks=Clicks",
    ]
    first = CliRunner().invoke(feedback_app(), [*args, "-w", str(seeded_workspace)])
    assert first.exit_code == 0, first.output
    assert "stored 10" in first.output
    assert "row 3" in first.output and "'nope' skipped" in first.output
    again = CliRunner().invoke(feedback_app(), [*args, "--json", "-w", str(seeded_workspace)])
    assert json.loads(again.output)["already_stored"] == 10

    out = tmp_path / "events.parquet"
    export = ["feedback", "export", "--format", "parquet", "--out", str(out), "-w", str(seeded_workspace)]
    result = CliRunner().invoke(feedback_app(), export)
    assert result.exit_code == 0, result.output
    assert "wrote 13 events" in result.output
    assert out.stat().st_size > 0
    bad = CliRunner().invoke(feedback_app(), [*export[:3], "csv", *export[4:]])
    assert bad.exit_code == 2

    pairs_out = tmp_path / "pairs.jsonl"
    pairs = CliRunner().invoke(
        feedback_app(), ["feedback", "pairs", "--out", str(pairs_out), "-w", str(seeded_workspace)]
    )
    assert pairs.exit_code == 0, pairs.output
    lines = [json.loads(line) for line in pairs_out.read_text(encoding="utf-8").splitlines()]
    # pub-1 (liked) beats pub-0 (one like, one dislike); both share the empty condition
    assert lines == [{"prompt": "", "chosen": "/x.png", "rejected": "/x.png"}]
