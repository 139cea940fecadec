"""A workspace with real, labelled generated items (tiny untrained VAE) and every channel kind.

Items come from the real generation engine, so their files carry the signed GB 45438
label that publishing must keep valid while filling the propagator fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from genloop.catalog import Catalog, open_catalog
from genloop.generate.engine import GenerationRequest, generate
from genloop.workspace import DATABASE_URL_ENV, Workspace
from support.tiny_generators import register_tiny

CHANNELS_TOML = """
[project]
name = "press"

[generate]
producer = "press-studio"

[channels.gallery]

[channels.shared]
kind = "folder"
path = "exports/shared"
propagator = "shared-drive"

[channels.news]
kind = "feed"
"""


@dataclass(frozen=True)
class Published:
    workspace: Workspace
    catalog: Catalog
    content_ids: list[str]


def make_items(root: Path, toml: str = CHANNELS_TOML, *, per_class: int = 1) -> Published:
    root.mkdir(parents=True, exist_ok=True)
    (root / "genloop.toml").write_text(toml, encoding="utf-8")
    workspace = Workspace(root)
    catalog = open_catalog(workspace.database_url)
    version = register_tiny(workspace, catalog, "vae", root.parent)
    report = generate(
        workspace,
        catalog,
        GenerationRequest(model=version, per_class=per_class, seed=3),
        config=workspace.config,
    )
    return Published(workspace, catalog, [item.id for item in report.items])


@pytest.fixture
def items(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Published:
    """Three labelled images (one per class), on SQLite and on PostgreSQL."""
    monkeypatch.setenv(DATABASE_URL_ENV, catalog_url)
    return make_items(tmp_path / "ws")
