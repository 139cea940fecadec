"""`GET /healthz`: the process answers and its catalog answers (for load balancers)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from genloop import __version__
from genloop.server.deps import CatalogDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    catalog: Literal["ok"]
    version: str


@router.get(
    "/healthz",
    response_model=Health,
    operation_id="health",
    summary="Liveness and catalog check",
    responses={503: {"description": "The catalog database does not answer"}},
)
def health(catalog: CatalogDep) -> Health:
    try:
        with catalog.session() as session:
            session.execute(text("select 1"))
    except SQLAlchemyError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the catalog does not answer") from exc
    return Health(status="ok", catalog="ok", version=__version__)
