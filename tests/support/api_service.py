"""An app under test with API keys per role: the client, its catalog and workspace, key headers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from genloop.catalog import Catalog, open_catalog
from genloop.server.app import create_app
from genloop.server.auth import create_api_key
from genloop.workspace import Workspace


@dataclass
class ApiService:
    client: TestClient
    catalog: Catalog
    workspace: Workspace
    keys: dict[str, str]
    """role → the secret of a key with that role."""

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def count(self, model: type) -> int:
        """Rows of `model`'s table in the catalog."""
        with self.catalog.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


@contextmanager
def running_service(workspace: Workspace, roles: Iterable[str], *, key_prefix: str) -> Iterator[ApiService]:
    """The workspace's app in a TestClient (lifespan run), with one new key per role."""
    catalog = open_catalog(workspace.database_url)
    keys = {role: create_api_key(catalog, name=f"{key_prefix}-{role}", role=role).secret for role in roles}
    with TestClient(create_app(workspace)) as client:
        yield ApiService(client, catalog, workspace, keys)
