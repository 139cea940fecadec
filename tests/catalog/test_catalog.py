"""The catalog on both backends: migrations, constraints, lineage queries."""

import pytest
import sqlalchemy as sa

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.lineage import licenses_in, lineage_for_content
from genloop.catalog.models import (
    ContentItem,
    DatasetSource,
    DatasetVersion,
    FeedbackEvent,
    ModelVersion,
    Publication,
    Run,
    RunDataset,
)
from genloop.errors import GenloopError, NotFoundError

EXPECTED_TABLES = {
    "dataset_versions",
    "dataset_sources",
    "runs",
    "run_datasets",
    "run_metrics",
    "model_versions",
    "model_aliases",
    "evaluations",
    "content_items",
    "publications",
    "feedback_events",
    "annotation_tasks",
    "annotations",
    "alembic_version",
}


def test_migrations_create_every_table(catalog: Catalog) -> None:
    tables = set(sa.inspect(catalog.engine).get_table_names())
    assert tables >= EXPECTED_TABLES
    with catalog.engine.connect() as connection:
        version = connection.execute(sa.text("select version_num from alembic_version")).scalar()
    assert version == _head_revision()


def _head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from genloop.catalog.session import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    (head,) = ScriptDirectory.from_config(cfg).get_heads()  # one head: migrations form a line
    return str(head)


def test_opening_twice_is_harmless(catalog_url: str) -> None:
    first = open_catalog(catalog_url)
    from genloop.catalog.session import Catalog as Fresh

    second = Fresh(catalog_url)
    second.migrate()  # already at head: no error, no change
    assert set(sa.inspect(second.engine).get_table_names()) == set(sa.inspect(first.engine).get_table_names())
    second.dispose()


def _chain(catalog: Catalog) -> None:
    with catalog.session() as s:
        raw = DatasetVersion(
            id="raw1", name="d", stage="collect", path="/x", record_count=3, manifest={}, parent_id=None
        )
        raw.sources = [DatasetSource(source="mnist-5k", license="CC-BY-SA-3.0", record_count=3)]
        final = DatasetVersion(id="ann1", name="d", stage="annotate", path="/y", record_count=2, manifest={})
        final.parent_id = "raw1"
        final.sources = [DatasetSource(source="mnist-5k", license="CC-BY-SA-3.0", record_count=2)]
        s.add_all([raw, final])
        s.flush()
        s.add(
            Run(id="run1", model_name="d", family="vae", config={"epochs": 1}, path="/r", status="completed")
        )
        s.flush()
        s.add(RunDataset(run_id="run1", dataset_version_id="ann1", role="train"))
        s.add(ModelVersion(id="d-v1", name="d", version=1, family="vae", run_id="run1", path="/m"))
        s.flush()
        s.add(
            ContentItem(
                id="c" * 32,
                model_version_id="d-v1",
                modality="image",
                path="/c.png",
                condition={"label": "3"},
                seed=1,
                params={},
                labels={},
            )
        )
        s.flush()
        s.add(Publication(id="p1", content_item_id="c" * 32, channel="gallery"))


def test_lineage_walks_content_to_license(catalog: Catalog) -> None:
    _chain(catalog)
    found = lineage_for_content(catalog, "c" * 10)  # a unique prefix works
    assert found["content"]["id"] == "c" * 32
    assert found["publications"][0]["id"] == "p1"
    model = found["model_version"]
    assert model["id"] == "d-v1" and model["run"]["id"] == "run1"
    chain = model["run"]["datasets"][0]["chain"]
    assert [v["id"] for v in chain] == ["ann1", "raw1"]
    assert licenses_in(found) == ["CC-BY-SA-3.0"]


def test_unknown_content_is_a_clear_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match="not in the catalog"):
        lineage_for_content(catalog, "deadbeefdeadbeef")


def test_foreign_keys_are_enforced(catalog: Catalog) -> None:
    with pytest.raises(sa.exc.IntegrityError), catalog.session() as s:
        s.add(FeedbackEvent(publication_id="missing", kind="like", viewer_id="v"))


def test_idempotency_keys_are_unique(catalog: Catalog) -> None:
    _chain(catalog)
    with catalog.session() as s:
        s.add(FeedbackEvent(publication_id="p1", kind="like", viewer_id="v", idempotency_key="k1"))
    with pytest.raises(sa.exc.IntegrityError), catalog.session() as s:
        s.add(FeedbackEvent(publication_id="p1", kind="like", viewer_id="v", idempotency_key="k1"))


@pytest.mark.postgres
def test_postgres_queries_are_planned_on_each_run_not_prepared(postgres_url: str) -> None:
    """psycopg prepares a query on its 5th run by default, and the prepared statement's generic
    plan, chosen while a table was small, stayed in use as it grew (a feedback batch slowed
    5x over 30,000 events). A catalog's connections prepare nothing, however often a query runs."""
    catalog = open_catalog(postgres_url)
    lookup = sa.select(FeedbackEvent.id).where(FeedbackEvent.idempotency_key == sa.bindparam("key"))
    with catalog.engine.connect() as connection:
        for i in range(12):
            assert connection.execute(lookup, {"key": f"k{i}"}).first() is None
        prepared = connection.execute(sa.text("SELECT count(*) FROM pg_prepared_statements")).scalar()
    assert prepared == 0


def test_postgres_pool_size_is_set_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """16 kept open by default (SQLAlchemy's 5 made 16 concurrent requests reconnect all the
    time); GENLOOP_DB_POOL_SIZE changes it; a bad value is a clear error. No connection is
    opened to build an engine."""
    from sqlalchemy.pool import QueuePool

    from genloop.catalog.session import DEFAULT_POOL_SIZE, POOL_SIZE_ENV, _make_engine

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/unused"
    monkeypatch.delenv(POOL_SIZE_ENV, raising=False)
    pool = _make_engine(url).pool
    assert isinstance(pool, QueuePool) and pool.size() == DEFAULT_POOL_SIZE == 16
    monkeypatch.setenv(POOL_SIZE_ENV, "40")
    assert _make_engine(url).pool.size() == 40  # type: ignore[attr-defined]
    for bad in ("0", "many", "-3"):
        monkeypatch.setenv(POOL_SIZE_ENV, bad)
        with pytest.raises(GenloopError, match=POOL_SIZE_ENV) as error:
            _make_engine(url)
        assert error.value.hint is not None and "1 to 1000" in error.value.hint
