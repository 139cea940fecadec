"""A minimal catalog chain for the feedback tests, on SQLite and PostgreSQL.

digits-v1: publications p-a, p-b · digits-v2: p-c, p-d · digits-v3: one item, never published.
"""

from __future__ import annotations

import pytest

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, DatasetVersion, ModelVersion, Publication, Run

PUBLICATIONS = {"p-a": "digits-v1", "p-b": "digits-v1", "p-c": "digits-v2", "p-d": "digits-v2"}


@pytest.fixture
def chain(catalog: Catalog) -> Catalog:
    with catalog.session() as session:
        session.add(
            DatasetVersion(id="ds", name="digits", stage="collect", path="/x", record_count=1, manifest={})
        )
        session.add(Run(id="run", model_name="digits", family="vae", config={}, path="/x"))
        session.flush()
        for version in (1, 2, 3):
            session.add(
                ModelVersion(
                    id=f"digits-v{version}",
                    name="digits",
                    version=version,
                    family="vae",
                    run_id="run",
                    path="/x",
                )
            )
        session.flush()
        items = {**PUBLICATIONS, "unpublished": "digits-v3"}
        for key, model in items.items():
            session.add(
                ContentItem(
                    id=f"item-{key}",
                    model_version_id=model,
                    modality="image",
                    path="/x.png",
                    condition={"label": "1"},
                    seed=0,
                    params={},
                    labels={},
                )
            )
        session.flush()
        for publication_id in PUBLICATIONS:
            session.add(
                Publication(id=publication_id, content_item_id=f"item-{publication_id}", channel="gallery")
            )
    return catalog
