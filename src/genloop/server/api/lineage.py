"""Lineage over HTTP.

* `GET /api/v1/lineage/{content_id}`: content item → model version → run → datasets → sources
  (the chain the gallery shows; licenses of every source record).
* `GET /api/v1/lineage-document/{ref}`: the two-way document `genloop lineage REF --json` prints
  for a content item, model version (id or `name@alias`) or dataset version — down to the
  sources and licenses, up to every run, model, publication and feedback count.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from genloop.catalog.lineage import EVENTS_LIMIT, lineage, lineage_for_content
from genloop.server.deps import CatalogDep
from genloop.server.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["lineage"])


@router.get(
    "/lineage/{content_id}",
    response_model=dict[str, Any],
    operation_id="get_lineage",
    summary="The lineage chain of one content item, down to the licenses of its training data",
    responses=ERROR_RESPONSES,
)
def get_lineage(catalog: CatalogDep, content_id: str) -> dict[str, Any]:
    return lineage_for_content(catalog, content_id)


@router.get(
    "/lineage-document/{ref}",
    response_model=dict[str, Any],
    operation_id="get_lineage_document",
    summary="Two-way lineage of a content item, model or dataset version (as `genloop lineage --json`)",
    responses=ERROR_RESPONSES,
)
def get_lineage_document(
    catalog: CatalogDep,
    ref: str,
    direction: Literal["down", "up", "both"] = "both",
    events: Annotated[
        bool, Query(description=f"Include feedback events (the latest {EVENTS_LIMIT:,} per subject).")
    ] = False,
) -> dict[str, Any]:
    return lineage(catalog, ref, direction=direction, events=events)
