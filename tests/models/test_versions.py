"""Model versions in the catalog (SQLite and PostgreSQL): numbering, aliases, references, loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import Base, Run
from genloop.catalog.session import MIGRATIONS_DIR
from genloop.catalog.session import Catalog as UnmigratedCatalog
from genloop.errors import GenloopError, NotFoundError
from genloop.models.vae import ConditionalVAE
from genloop.models.versions import (
    alias_history,
    archive,
    list_model_versions,
    load_model_version,
    promote,
    register_model_version,
    resolve_model_version,
    rollback,
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


def test_every_alias_move_is_recorded(setup: tuple[Workspace, Catalog, Path]) -> None:
    _, catalog, _ = setup
    register(setup)
    register(setup, alias="challenger")
    promote(catalog, "digits-v2", actor="ana", reason="looks better")
    set_alias(catalog, "digits", "challenger", "digits-v1", actor="bo")
    set_alias(catalog, "digits", "challenger", "digits-v1")  # not a move: nothing recorded
    moves = [
        (e.alias, e.from_version_id, e.to_version_id, e.action) for e in alias_history(catalog, "digits")
    ]
    assert moves == [
        ("champion", None, "digits-v1", "register"),
        ("challenger", None, "digits-v2", "register"),
        ("champion", "digits-v1", "digits-v2", "promote"),
        ("challenger", "digits-v2", "digits-v1", "set"),
    ]
    champion = alias_history(catalog, "digits", "champion")
    assert [e.actor for e in champion][1:] == ["ana"] and champion[1].reason == "looks better"
    assert champion[0].reason == "trained by run run-1" and champion[0].actor  # the OS user
    assert champion[0].created_at <= champion[1].created_at


def test_rollback_walks_the_alias_back_one_move_at_a_time(setup: tuple[Workspace, Catalog, Path]) -> None:
    _, catalog, _ = setup
    for _ in range(3):
        register(setup)  # each new version takes the champion: v1 → v2 → v3
    back = rollback(catalog, "digits", actor="ana")
    assert (back.version_id, back.previous_id) == ("digits-v2", "digits-v3")
    assert resolve_model_version(catalog, "digits") == "digits-v2"
    assert rollback(catalog, "digits").version_id == "digits-v1"
    with pytest.raises(GenloopError, match="no earlier version to roll back to") as nothing:
        rollback(catalog, "digits")
    assert "genloop models history digits" in (nothing.value.hint or "")
    last = alias_history(catalog, "digits", "champion")[-1]
    assert (last.action, last.from_version_id, last.to_version_id) == ("rollback", "digits-v2", "digits-v1")
    promote(catalog, "digits-v3")  # v1 → v3, then rollback returns to v1
    assert rollback(catalog, "digits").version_id == "digits-v1"
    with pytest.raises(NotFoundError, match="has no alias 'stable'"):
        rollback(catalog, "digits", alias="stable")


def test_archived_versions_are_hidden_unpromotable_and_need_their_aliases_moved(
    setup: tuple[Workspace, Catalog, Path],
) -> None:
    workspace, catalog, _ = setup
    register(setup)
    register(setup)
    with pytest.raises(
        GenloopError, match="digits-v2 cannot be archived: digits@champion points at it"
    ) as busy:
        archive(catalog, "digits-v2")
    assert "genloop models rollback digits" in (busy.value.hint or "")
    assert archive(catalog, "digits-v1") == "digits-v1"
    assert archive(catalog, "digits-v1") == "digits-v1"  # again: no change, no error
    assert [v.id for v in list_model_versions(catalog, "digits", include_archived=False)] == ["digits-v2"]
    assert list_model_versions(catalog, "digits")[1].archived_at is not None
    with pytest.raises(GenloopError, match="digits-v1 is archived and cannot be promoted") as archived:
        promote(catalog, "digits-v1")
    assert "--restore" in (archived.value.hint or "")
    with pytest.raises(GenloopError, match="is archived"):
        rollback(catalog, "digits")  # the earlier champion is archived
    with pytest.raises(GenloopError, match="is archived"):
        set_alias(catalog, "digits", "old", "digits-v1")
    assert (
        load_model_version(workspace, catalog, "digits-v1").version_id == "digits-v1"
    )  # lineage still loads
    archive(catalog, "digits-v1", restore=True)
    assert rollback(catalog, "digits").version_id == "digits-v1"


def _alembic(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def test_migration_0003_upgrades_a_0002_catalog_and_keeps_its_data(catalog_url: str) -> None:
    old = UnmigratedCatalog(catalog_url)
    with old.engine.begin() as connection:
        command.upgrade(_alembic(connection), "0002")
        connection.execute(
            sa.text(
                "insert into runs (id, model_name, family, status, config, path, epochs_done, steps_done, "
                "started_at) values ('r1', 'digits', 'vae', 'completed', '{}', '/r', 1, 1, :t)"
            ),
            {"t": "2026-11-01 10:00:00+00:00"},
        )
        for version in (1, 2):
            connection.execute(
                sa.text(
                    "insert into model_versions (id, name, version, family, run_id, path, feedback_count, "
                    "created_at) values (:id, 'digits', :v, 'vae', 'r1', '/m', 0, :t)"
                ),
                {"id": f"digits-v{version}", "v": version, "t": "2026-11-01 10:00:00+00:00"},
            )
        connection.execute(
            sa.text(
                "insert into model_aliases (name, alias, model_version_id, updated_at) "
                "values ('digits', 'champion', 'digits-v2', :t)"
            ),
            {"t": "2026-11-02 09:30:00+00:00"},
        )
    old.dispose()

    catalog = open_catalog(catalog_url)  # migrates to head
    assert resolve_model_version(catalog, "digits") == "digits-v2"
    assert [v.archived_at for v in list_model_versions(catalog)] == [None, None]
    (seeded,) = alias_history(catalog, "digits")
    assert (seeded.action, seeded.from_version_id, seeded.to_version_id, seeded.forced, seeded.gates) == (
        "migrated",
        None,
        "digits-v2",
        False,
        [],
    )
    assert seeded.created_at.date().isoformat() == "2026-11-02"  # when the alias was last set
    promote(catalog, "digits-v1")
    assert rollback(catalog, "digits").version_id == "digits-v2"  # the seeded event is the starting point
    with catalog.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diffs if "alias_events" in str(d) or "archived_at" in str(d)] == []


def test_migration_0003_downgrades_and_upgrades_again(catalog: Catalog) -> None:
    with catalog.engine.begin() as connection:
        command.downgrade(_alembic(connection), "0002")
        inspector = sa.inspect(connection)
        assert "model_alias_events" not in inspector.get_table_names()
        assert "archived_at" not in {c["name"] for c in inspector.get_columns("model_versions")}
        command.upgrade(_alembic(connection), "head")
        assert "model_alias_events" in sa.inspect(connection).get_table_names()
