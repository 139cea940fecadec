"""The support app as a model version of the catalog: `support-vN`, one per built app version.

Pre-replies are content items, and content items belong to a model version, so each built app
(knowledge base + intent model + index, `.genloop/apps/support/`) is registered like a trained
model: a `runs` row (id `support-<app version>`, family `support`, config = the app's manifest,
which for an improved app names the feedback events it learned from) and a model version whose
files are a copy of the app folder (so `support-v3` can be inspected, or restored, later). A
rebuilt app with the same version (same entries and settings) finds its existing version.

    support-v1 (built)  ←parent─  support-v2 (improved from feedback events …)  ←parent─  …
"""

from __future__ import annotations

from sqlalchemy import select

from genloop.apps.support.app import SupportApp, app_dir
from genloop.catalog import Catalog
from genloop.catalog.models import ModelVersion, Run
from genloop.models.versions import register_model_version
from genloop.workspace import Workspace

MODEL_NAME = "support"
FAMILY = "support"


def run_id_for(app_version: str) -> str:
    return f"support-{app_version}"


def find_model_version(catalog: Catalog, app_version: str) -> str | None:
    with catalog.session() as session:
        return session.scalar(
            select(ModelVersion.id)
            .where(ModelVersion.run_id == run_id_for(app_version))
            .order_by(ModelVersion.version)
            .limit(1)
        )


def ensure_model_version(workspace: Workspace, catalog: Catalog, app: SupportApp) -> str:
    """The model version id of `app` (`support-vN`), registering it (and its run) when new."""
    found = find_model_version(catalog, app.version)
    if found is not None:
        return found
    with workspace.lock("support-model", timeout=60):
        found = find_model_version(catalog, app.version)  # another process may have just done it
        if found is not None:
            return found
        run_id = run_id_for(app.version)
        with catalog.session() as session:
            if session.get(Run, run_id) is None:
                session.add(
                    Run(
                        id=run_id,
                        model_name=MODEL_NAME,
                        family=FAMILY,
                        status="completed",
                        config=app.manifest,
                        path=workspace.relative(app_dir(workspace)),
                    )
                )
        parent = app.manifest.get("parent_model_version")
        return register_model_version(
            workspace,
            catalog,
            name=MODEL_NAME,
            family=FAMILY,
            run_id=run_id,
            weights_dir=app_dir(workspace),
            parent_id=str(parent) if parent else None,
            feedback_count=len(app.manifest.get("feedback_events", [])),
        )
