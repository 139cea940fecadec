"""`GET /api/v1/lineage/{content_id}`: content item → model version → run → datasets → sources."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from genloop.catalog.lineage import lineage_for_content
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
