"""Opening the catalog: engine, sessions, and Alembic migrations applied automatically.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL is used when
`GENLOOP_DATABASE_URL=postgresql+psycopg://...` is set. Opening a catalog brings its
schema to the newest migration, so users never run migrations by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from genloop.config import int_from_env
from genloop.errors import GenloopError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
POOL_SIZE_ENV = "GENLOOP_DB_POOL_SIZE"
DEFAULT_POOL_SIZE = 16
"""PostgreSQL connections each process keeps open (and as many more it may open for a burst).

SQLAlchemy's default keeps 5 and closes every connection above them when it is returned,
so 16 concurrent requests opened and closed PostgreSQL connections (a backend process
each) all the time: single feedback events at 16 clients had p99 136 ms with 5 and 62 ms
with 20 (benchmarks/feedback_ingestion.py, 2026-11-29). Two server processes at the
default use at most 64 of PostgreSQL's default 100 connections."""


class Catalog:
    """One database: an engine plus a session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def migrate(self) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            with self.engine.begin() as connection:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise GenloopError(
                f"cannot open the catalog at {_redacted(self.url)}: {exc.orig}",
                hint="check GENLOOP_DATABASE_URL (or unset it to use the workspace's SQLite file)",
            ) from None

    def dispose(self) -> None:
        self.engine.dispose()


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    pool_size = int_from_env(POOL_SIZE_ENV, DEFAULT_POOL_SIZE, 1, 1000, "a connection count")
    # No server-side prepared statements (psycopg prepares a query on its 5th run): a prepared
    # statement's generic plan, chosen while a table was small, stayed in use as the table grew
    # (until an ANALYZE), so a batch of 10 feedback events took 5.8 ms at 5,000 stored events
    # and 31 ms at 30,000, the key lookup a sequential scan; planned on each run it stays at
    # 4.4-5.8 ms (2026-11-29, autovacuum off). Also what PgBouncer's transaction mode needs.
    psycopg = make_url(url).get_dialect().driver == "psycopg"
    connect_args = {"prepare_threshold": None} if psycopg else {}
    return create_engine(
        url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args
    )


_open_catalogs: dict[str, Catalog] = {}
_open_lock = threading.Lock()


def open_catalog(url: str) -> Catalog:
    """The catalog at `url`, migrated to the newest schema (once per process)."""
    with _open_lock:
        catalog = _open_catalogs.get(url)
        if catalog is None:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(url)
            catalog.migrate()
            _open_catalogs[url] = catalog
        return catalog


def close_all() -> None:
    with _open_lock:
        for catalog in _open_catalogs.values():
            catalog.dispose()
        _open_catalogs.clear()
