"""A real catalog chain for the server tests, written through the ORM.

dataset versions (collect → annotate, with sources and licenses) → runs → model
versions digits-v1 and digits-v2 (a fine-tune of v1) → content items with real PNG
files in `.genloop/content/` → gallery publications, one minute apart (newest last).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import (
    ContentItem,
    DatasetSource,
    DatasetVersion,
    ModelVersion,
    Publication,
    Run,
    RunDataset,
)
from genloop.server.app import create_app
from genloop.workspace import Workspace

PUBLISHED_AT = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
ITEMS_PER_MODEL = 3


@dataclass(frozen=True)
class SeededCatalog:
    workspace: Workspace
    catalog: Catalog
    model_versions: tuple[str, ...]
    content_ids: tuple[str, ...]
    """In publication order: the last one is the newest."""
    publication_ids: tuple[str, ...]
    """publication_ids[i] publishes content_ids[i]."""
    model_of: dict[str, str]
    """publication id → model version id."""


def digit_png(label: int, size: int = 28) -> bytes:
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).text((9, 7), str(label), fill=255)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _datasets() -> list[DatasetVersion]:
    collected = DatasetVersion(
        id="ds-collect-0001",
        name="digits",
        stage="collect",
        parent_id=None,
        path="/unused",
        record_count=400,
        manifest={},
    )
    collected.sources = [DatasetSource(source="mnist-5k", license="CC-BY-SA-3.0", record_count=400)]
    annotated = DatasetVersion(
        id="ds-annot-0002",
        name="digits",
        stage="annotate",
        parent_id=collected.id,
        path="/unused",
        record_count=380,
        manifest={},
    )
    return [collected, annotated]


def seed_catalog(workspace: Workspace) -> SeededCatalog:
    catalog = open_catalog(workspace.database_url)
    content_ids: list[str] = []
    publication_ids: list[str] = []
    model_of: dict[str, str] = {}
    with catalog.session() as session:
        session.add_all(_datasets())
        session.flush()
        for version in (1, 2):
            run_id = f"run-{version:04d}"
            session.add(
                Run(
                    id=run_id,
                    model_name="digits",
                    family="vae",
                    status="completed",
                    config={"epochs": 2},
                    path="/unused",
                    epochs_done=2,
                )
            )
            session.add(RunDataset(run_id=run_id, dataset_version_id="ds-annot-0002", role="train"))
            session.flush()
            session.add(
                ModelVersion(
                    id=f"digits-v{version}",
                    name="digits",
                    version=version,
                    family="vae",
                    run_id=run_id,
                    parent_id="digits-v1" if version == 2 else None,
                    path="/unused",
                )
            )
        session.flush()
        for index in range(2 * ITEMS_PER_MODEL):
            model_id = f"digits-v{1 + index // ITEMS_PER_MODEL}"
            content_id = f"c{index:02d}" + "0" * 30
            path = workspace.path("content", content_id[:2], f"{content_id}.png")
            path.write_bytes(digit_png(index))
            session.add(
                ContentItem(
                    id=content_id,
                    model_version_id=model_id,
                    modality="image",
                    path=str(path),
                    condition={"label": str(index)},
                    seed=index,
                    params={},
                    labels={"implicit": {"AIGC": {"Label": "1", "ContentProducer": "genloop"}}},
                )
            )
            session.flush()
            publication_id = f"pub-{index:02d}"
            session.add(
                Publication(
                    id=publication_id,
                    content_item_id=content_id,
                    channel="gallery",
                    published_at=PUBLISHED_AT + timedelta(minutes=index),
                )
            )
            content_ids.append(content_id)
            publication_ids.append(publication_id)
            model_of[publication_id] = model_id
    return SeededCatalog(
        workspace=workspace,
        catalog=catalog,
        model_versions=("digits-v1", "digits-v2"),
        content_ids=tuple(content_ids),
        publication_ids=tuple(publication_ids),
        model_of=model_of,
    )


@pytest.fixture
def seeded(workspace: Workspace) -> SeededCatalog:
    """The chain above, on SQLite and on PostgreSQL."""
    return seed_catalog(workspace)


@pytest.fixture
def client(seeded: SeededCatalog) -> Iterator[TestClient]:
    with TestClient(create_app(seeded.workspace)) as test_client:
        yield test_client
