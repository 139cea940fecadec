"""`genloop feedback stats`: like-rate per model version as a table and as JSON."""

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
    assert rows == [
        {
            "model_version_id": "digits-v1",
            "publications": 2,
            "likes": 2,
            "dislikes": 1,
            "like_rate": pytest.approx(2 / 3),
        }
    ]
