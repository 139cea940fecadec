"""Migration 0004 (content review columns) on SQLite and PostgreSQL: old items keep their data and
become `ready` gallery items with no verdicts; downgrade and upgrade again both work."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import Base, ContentItem
from genloop.catalog.session import MIGRATIONS_DIR
from genloop.catalog.session import Catalog as UnmigratedCatalog

NEW_COLUMNS = {"request_id", "channel", "status", "verdicts", "timings", "review_log"}
T = "2026-11-01 10:00:00+00:00"


def _alembic(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def test_0004_upgrades_a_0003_catalog_and_keeps_its_items(catalog_url: str) -> None:
    old = UnmigratedCatalog(catalog_url)
    with old.engine.begin() as connection:
        command.upgrade(_alembic(connection), "0003")
        inserts = (
            "insert into runs (id, model_name, family, status, config, path, epochs_done, steps_done, "
            "started_at) values ('r1', 'digits', 'vae', 'completed', '{}', '/r', 1, 1, :t)",
            "insert into model_versions (id, name, version, family, run_id, path, feedback_count, "
            "created_at) values ('digits-v1', 'digits', 1, 'vae', 'r1', '/m', 0, :t)",
            "insert into content_items (id, model_version_id, modality, path, condition, seed, params, "
            "labels, created_at) values ('c1', 'digits-v1', 'image', 'content/c1.png', "
            "'{\"label\": \"3\"}', 7, '{}', '{}', :t)",
        )
        for statement in inserts:
            connection.execute(sa.text(statement), {"t": T})
    old.dispose()

    catalog = open_catalog(catalog_url)  # migrates to head
    with catalog.session() as session:
        item = session.get(ContentItem, "c1")
        assert item is not None
        assert (item.condition, item.seed, item.status, item.channel) == (
            {"label": "3"},
            7,
            "ready",
            "gallery",
        )
        assert (item.verdicts, item.timings, item.review_log, item.request_id) == ([], {}, [], None)
    with catalog.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diffs if "content_items" in str(d)] == []


def test_0004_downgrades_and_upgrades_again(catalog: Catalog) -> None:
    with catalog.engine.begin() as connection:
        command.downgrade(_alembic(connection), "0003")
        columns = {c["name"] for c in sa.inspect(connection).get_columns("content_items")}
        assert not columns & NEW_COLUMNS
        command.upgrade(_alembic(connection), "head")
        columns = {c["name"] for c in sa.inspect(connection).get_columns("content_items")}
        assert columns >= NEW_COLUMNS
