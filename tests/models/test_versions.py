"""Model versions in the catalog (SQLite and PostgreSQL): numbering, aliases, references, loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import Run
from genloop.errors import GenloopError, NotFoundError
from genloop.models.vae import ConditionalVAE
from genloop.models.versions import (
    list_model_versions,
    load_model_version,
    register_model_version,
    resolve_model_version,
    set_alias,
)
from genloop.workspace import Workspace


@pytest.fixture
def setup(workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Catalog, Path]:
    catalog = open_catalog(workspace.database_url)
    with catalog.session() as session:
        session.add(Run(id="run-1", model_name="digits", family="vae", config={}, path="/runs/run-1"))
    torch.manual_seed(0)
    weights = tmp_path / "weights"
    ConditionalVAE(classes=["a", "b"], latent_dim=4, hidden_channels=4, image_size=16).save(weights)
    return workspace, catalog, weights


def register(setup: tuple[Workspace, Catalog, Path], **kwargs: object) -> str:
    workspace, catalog, weights = setup
    settings: dict = {"name": "digits", "family": "vae", "run_id": "run-1", "weights_dir": weights, **kwargs}
    return register_model_version(workspace, catalog, **settings)


def test_versions_are_numbered_copied_and_the_champion_moves(setup: tuple[Workspace, Catalog, Path]) -> None:
    workspace, catalog, _ = setup
    assert register(setup) == "digits-v1"
    assert register(setup, parent_id="digits-v1", feedback_count=3) == "digits-v2"
    assert (workspace.state_dir / "models" / "digits" / "v2" / "model.safetensors").is_file()
    assert not list((workspace.state_dir / "models" / "digits").glob(".*partial"))
    assert resolve_model_version(catalog, "digits") == "digits-v2"
    assert register(setup, alias="challenger") == "digits-v3"
    versions = list_model_versions(catalog, "digits")
    assert [(v.id, v.aliases, v.parent_id) for v in versions] == [
        ("digits-v3", ("challenger",), None),
        ("digits-v2", ("champion",), "digits-v1"),
        ("digits-v1", (), None),
    ]
    assert versions[1].feedback_count == 3
    assert list_model_versions(catalog, "other") == []


def test_references_resolve_by_id_alias_and_name(setup: tuple[Workspace, Catalog, Path]) -> None:
    _, catalog, _ = setup
    register(setup)
    register(setup, alias=None)
    assert resolve_model_version(catalog, "digits-v2") == "digits-v2"
    assert resolve_model_version(catalog, "digits@champion") == "digits-v1"
    assert resolve_model_version(catalog, "digits") == "digits-v1"
    set_alias(catalog, "digits", "champion", "digits-v2")
    assert resolve_model_version(catalog, "digits") == "digits-v2"


def test_unknown_references_say_what_exists(setup: tuple[Workspace, Catalog, Path]) -> None:
    _, catalog, _ = setup
    register(setup, alias="challenger")
    with pytest.raises(NotFoundError, match="has no alias 'best'") as no_alias:
        resolve_model_version(catalog, "digits@best")
    assert no_alias.value.hint == "aliases of 'digits': challenger"
    with pytest.raises(NotFoundError, match="has no champion alias") as no_champion:
        resolve_model_version(catalog, "digits")
    assert "digits-v1" in (no_champion.value.hint or "")
    with pytest.raises(NotFoundError, match="no model version or model named 'cats'") as unknown:
        resolve_model_version(catalog, "cats")
    assert "genloop models ls" in (unknown.value.hint or "")
    with pytest.raises(NotFoundError):
        set_alias(catalog, "cats", "champion", "digits-v1")  # a version of another model


def test_invalid_names_are_refused(setup: tuple[Workspace, Catalog, Path]) -> None:
    with pytest.raises(GenloopError, match="invalid model name"):
        register(setup, name="../escape")
    with pytest.raises(GenloopError, match="invalid alias"):
        register(setup, alias="not ok")


def test_load_model_version_returns_an_eval_mode_model_that_samples(
    setup: tuple[Workspace, Catalog, Path],
) -> None:
    workspace, catalog, weights = setup
    register(setup)
    loaded = load_model_version(workspace, catalog, "digits")
    assert (loaded.version_id, loaded.name, loaded.family) == ("digits-v1", "digits", "vae")
    assert loaded.classes == ["a", "b"] and loaded.config["image_size"] == 16
    assert loaded.path == workspace.state_dir / "models" / "digits" / "v1"
    assert not loaded.model.training
    original = ConditionalVAE.load(weights)
    assert torch.equal(
        loaded.model.sample(2, torch.tensor([0, 1]), seed=4), original.sample(2, torch.tensor([0, 1]), seed=4)
    )
