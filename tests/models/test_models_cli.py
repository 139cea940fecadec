"""`genloop models ls | show | promote` against a real catalog (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from genloop.catalog import open_catalog
from genloop.catalog.models import DatasetVersion, Evaluation, Run
from genloop.cli.models_cmd import register
from genloop.errors import GenloopError, NotFoundError
from genloop.models.gates import GateError
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
    for command in ("ls", "show", "promote", "rollback", "archive", "history"):
        result = CliRunner().invoke(models_cli(), ["models", command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "Examples" in result.output and "genloop models" in result.output


GATES = """
[[gates]]
metric = "conditional_accuracy"
rule = "no_worse_than_champion"
tolerance = 0.05
direction = "higher_is_better"

[[gates]]
metric = "worst_class_accuracy"
rule = "at_least"
value = 0.4
"""


def add_gates(workspace: Workspace) -> None:
    with workspace.config_path.open("a", encoding="utf-8") as config:
        config.write(GATES)


def evaluate(workspace: Workspace, version_id: str, **metrics: float) -> None:
    with open_catalog(workspace.database_url).session() as session:
        session.add(Evaluation(model_version_id=version_id, dataset_version_id="ds-1", metrics=metrics))


def test_promote_refuses_with_the_numbers_and_force_overrides(app: typer.Typer, workspace: Workspace) -> None:
    add_gates(workspace)
    evaluate(workspace, "digits-v2", conditional_accuracy=0.86, worst_class_accuracy=0.5)  # the champion
    evaluate(workspace, "digits-v1", conditional_accuracy=0.71, worst_class_accuracy=0.45)
    with pytest.raises(GateError) as refused:
        invoke(app, workspace, "promote", "digits-v1")
    assert "conditional_accuracy 0.71 < champion 0.86 − 5 % (0.817)" in str(refused.value)
    assert "worst_class_accuracy" not in refused.value.message
    assert resolve_model_version(open_catalog(workspace.database_url), "digits") == "digits-v2"

    out = invoke(app, workspace, "promote", "digits-v1", "--force", "--reason", "new style")
    assert "✗ conditional_accuracy 0.71 < champion 0.86 − 5 % (0.817)\n" in out
    assert "✓ worst_class_accuracy 0.45 ≥ 0.4 (at least)\n" in out
    assert out.strip().endswith("digits@champion → digits-v1 (was digits-v2) [forced past failing gates]")
    history = json.loads(invoke(app, workspace, "history", "digits", "--json"))
    assert history[-1]["forced"] is True and history[-1]["reason"].startswith("new style (forced past:")
    assert [g["passed"] for g in history[-1]["gates"]] == [False, True]


def test_a_missing_metric_is_refused_with_a_hint_to_evaluate(app: typer.Typer, workspace: Workspace) -> None:
    add_gates(workspace)
    evaluate(workspace, "digits-v2", conditional_accuracy=0.86, worst_class_accuracy=0.5)
    evaluate(workspace, "digits-v1", conditional_accuracy=0.9)
    with pytest.raises(GateError, match=r"worst_class_accuracy .*missing from digits-v1's latest") as refused:
        invoke(app, workspace, "promote", "digits-v1")
    assert "genloop evaluate" in (refused.value.hint or "")
    # other aliases are not gated by default
    assert invoke(app, workspace, "promote", "digits-v1", "--alias", "challenger").strip() == (
        "digits@challenger → digits-v1"
    )


def test_the_genloop_command_prints_the_refusal_and_exits_2(app: typer.Typer, workspace: Workspace) -> None:
    add_gates(workspace)
    evaluate(workspace, "digits-v2", conditional_accuracy=0.86, worst_class_accuracy=0.5)
    evaluate(workspace, "digits-v1", conditional_accuracy=0.71, worst_class_accuracy=0.3)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "genloop.cli.main",
            "models",
            "promote",
            "digits-v1",
            "-w",
            str(workspace.root),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "digits-v1 cannot become champion: 2 of 2 gates fail" in done.stderr
    assert "conditional_accuracy 0.71 < champion 0.86 − 5 % (0.817)" in done.stderr
    assert "worst_class_accuracy 0.3 < 0.4 (at least)" in done.stderr
    assert "hint:" in done.stderr and "--force" in done.stderr


def test_rollback_archive_and_history(app: typer.Typer, workspace: Workspace) -> None:
    assert (
        invoke(app, workspace, "promote", "digits-v1").strip()
        == "digits@champion → digits-v1 (was digits-v2)"
    )
    assert (
        invoke(app, workspace, "rollback", "digits").strip() == "digits@champion → digits-v2 (was digits-v1)"
    )
    with pytest.raises(GenloopError, match="digits-v2 cannot be archived: digits@champion"):
        invoke(app, workspace, "archive", "digits-v2")
    assert invoke(app, workspace, "archive", "digits-v1").strip() == "digits-v1 archived"
    assert "1 archived version(s) hidden" in invoke(app, workspace, "ls")
    assert [r["id"] for r in json.loads(invoke(app, workspace, "ls", "--json"))] == ["digits-v2"]
    assert [r["id"] for r in json.loads(invoke(app, workspace, "ls", "--all", "--json"))] == [
        "digits-v2",
        "digits-v1",
    ]
    assert "digits-v1 (archived)" in invoke(app, workspace, "ls", "--all")
    assert "archived  20" in invoke(app, workspace, "show", "digits-v1")
    with pytest.raises(GenloopError, match="digits-v1 is archived and cannot be promoted"):
        invoke(app, workspace, "promote", "digits-v1")
    with pytest.raises(GenloopError, match="digits-v1 is archived"):
        invoke(app, workspace, "rollback", "digits@champion")  # v1 → v2 → v1 → v2: back is v1
    assert invoke(app, workspace, "archive", "digits-v1", "--restore").strip() == "digits-v1 restored"
    out = invoke(app, workspace, "history", "digits")
    actions = [line.split()[5] for line in out.splitlines() if line.lstrip().startswith("20")]
    assert actions == ["register", "register", "promote", "rollback"]
