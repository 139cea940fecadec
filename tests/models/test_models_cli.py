"""`genloop models ls | show | promote` against a real catalog (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from genloop.catalog import open_catalog
from genloop.catalog.models import DatasetVersion, Evaluation, Run
from genloop.cli.models_cmd import register
from genloop.errors import NotFoundError
from genloop.models.vae import ConditionalVAE
from genloop.models.versions import register_model_version, resolve_model_version
from genloop.workspace import Workspace

METRICS = {"heldout_elbo": -120.74, "conditional_accuracy": 0.838, "worst_class_accuracy": 0.45}


@pytest.fixture
def app(workspace: Workspace, tmp_path: Path) -> typer.Typer:
    """digits-v1 (evaluated) and its child digits-v2 (the champion, 7 feedback items)."""
    catalog = open_catalog(workspace.database_url)
    with catalog.session() as session:
        session.add(Run(id="run-1", model_name="digits", family="vae", config={}, path="/runs/run-1"))
        session.add(
            DatasetVersion(id="ds-1", name="d", stage="annotate", path="/d", record_count=0, manifest={})
        )
    ConditionalVAE(classes=["a", "b"], image_size=8, latent_dim=2, hidden_channels=2).save(tmp_path / "w")
    common = {"name": "digits", "family": "vae", "run_id": "run-1", "weights_dir": tmp_path / "w"}
    register_model_version(workspace, catalog, **common)
    register_model_version(workspace, catalog, **common, parent_id="digits-v1", feedback_count=7)
    with catalog.session() as session:
        session.add(Evaluation(model_version_id="digits-v1", dataset_version_id="ds-1", metrics=METRICS))
    return models_cli()


def models_cli() -> typer.Typer:
    application = typer.Typer()
    register(application)
    return application


def invoke(app: typer.Typer, workspace: Workspace, *args: str) -> str:
    result = CliRunner().invoke(app, ["models", *args, "-w", str(workspace.root)], env={"COLUMNS": "200"})
    if result.exception:
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_ls_shows_versions_aliases_lineage_and_metrics(app: typer.Typer, workspace: Workspace) -> None:
    out = invoke(app, workspace, "ls")
    v2, v1 = (line for line in out.splitlines() if line.lstrip().startswith("digits-v"))
    assert "champion" in v2 and "digits-v1" in v2 and " 7 " in v2
    assert "-120.7" in v1 and "83.8%" in v1 and "45.0%" in v1
    rows = json.loads(invoke(app, workspace, "ls", "--json"))
    assert [(r["id"], r["aliases"], r["parent_id"]) for r in rows] == [
        ("digits-v2", ["champion"], "digits-v1"),
        ("digits-v1", [], None),
    ]
    assert rows[1]["latest_evaluation"] == METRICS


def test_show_gives_config_lineage_and_evaluations(app: typer.Typer, workspace: Workspace) -> None:
    details = json.loads(invoke(app, workspace, "show", "digits", "--json"))
    assert details["id"] == "digits-v2" and details["lineage"] == ["digits-v2", "digits-v1"]
    assert details["config"]["classes"] == ["a", "b"] and details["evaluations"] == []
    out = invoke(app, workspace, "show", "digits-v1")
    assert "-120.7" in out and "83.8%" in out
    with pytest.raises(NotFoundError, match="no model version or model named 'cats'"):
        invoke(app, workspace, "show", "cats")


def test_promote_moves_the_champion(app: typer.Typer, workspace: Workspace) -> None:
    out = invoke(app, workspace, "promote", "digits-v1")
    assert out.strip() == "digits@champion → digits-v1 (was digits-v2)"
    assert resolve_model_version(open_catalog(workspace.database_url), "digits") == "digits-v1"


def test_help_has_examples() -> None:
    for command in ("ls", "show", "promote"):
        result = CliRunner().invoke(models_cli(), ["models", command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "Examples" in result.output and "genloop models" in result.output
