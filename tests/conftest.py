"""Shared fixtures: real catalogs on SQLite and PostgreSQL, tiny real workspaces.

PostgreSQL: the catalog tests run on both backends. The server is expected at
GENLOOP_TEST_POSTGRES_URL (default: the build machines' 127.0.0.1:5432, user
postgres, database test). When it is unreachable the tests are skipped with the
reason, except under CI (CI=true) or GENLOOP_REQUIRE_POSTGRES=1, where that fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from sqlalchemy.engine import make_url

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.session import close_all
from genloop.data.datasets import DatasetHandle
from genloop.workspace import DATABASE_URL_ENV, Workspace
from support.mnist import MakeDigits, mnist_dataset

POSTGRES_URL = os.environ.get(
    "GENLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

os.environ.setdefault("GENLOOP_NO_PROGRESS", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One pytest worker per CPU: each keeps to one thread, or two workers' torch pools fight
    # over the same two cores (sampling and evaluation run outside the training loop's setting).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


def _postgres_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("GENLOOP_REQUIRE_POSTGRES") == "1"


_postgres_problem: str | None = None
_postgres_checked = False


def postgres_problem() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per test session)."""
    global _postgres_checked, _postgres_problem
    if not _postgres_checked:
        _postgres_checked = True
        try:
            engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as connection:
                connection.execute(sa.text("select 1"))
            engine.dispose()
        except Exception as exc:
            _postgres_problem = (
                f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc.__class__.__name__}: {exc}"
            )
    return _postgres_problem


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    problem = postgres_problem()
    if problem:
        if _postgres_required():
            pytest.fail(f"{problem} (required under CI; start PostgreSQL or unset CI)")
        pytest.skip(problem)
    name = f"genloop_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        close_all()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A catalog URL on each backend: SQLite in tmp_path, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        close_all()
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def catalog(catalog_url: str) -> Catalog:
    return open_catalog(catalog_url)


TINY_CONFIG = """
[project]
name = "digits"

[collect]
source = "mnist-5k"
limit = 400
test_fraction = 0.2

[train]
epochs = 2
batch_size = 64
latent_dim = 8
hidden_channels = 8
checkpoint_every_steps = 3
grid_per_class = 2

[evaluate]
samples_per_class = 10
samples = 500
classifier_epochs = 1

[generate]
per_class = 2

[improve]
epochs = 1
"""


def make_workspace(root: Path, config_text: str = TINY_CONFIG) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    (root / "genloop.toml").write_text(config_text, encoding="utf-8")
    return Workspace(root)


@pytest.fixture
def workspace(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A tiny real workspace (400 MNIST digits, 2 small epochs) on each catalog backend."""
    monkeypatch.setenv(DATABASE_URL_ENV, catalog_url)
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def sqlite_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """Like `workspace`, SQLite only (for tests whose subject is not the catalog backend)."""
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    yield make_workspace(tmp_path / "ws")
    close_all()


@pytest.fixture(autouse=True)
def one_training_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny models gain nothing from a second thread, and lose a lot when the CPUs are shared."""
    monkeypatch.setenv("GENLOOP_NUM_THREADS", "1")


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch's intra-op threads restored after a test that sets them (bit-exactness checks)."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_digits() -> MakeDigits:
    """`make_digits(workspace, per_class=40)` → a dataset version of real digits in that workspace."""

    def make(workspace: Workspace, *, per_class: int = 40) -> DatasetHandle:
        return mnist_dataset(workspace, open_catalog(workspace.database_url), per_class=per_class)

    return make


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests leave files worth looking at after a CI run (screenshots, sample grids)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
