"""`/api/v1/keys`: create, list and revoke API keys (admin only).

The secret of a new key is in the response of `POST` and nowhere else, ever: the
catalog keeps only its SHA-256, and `GET` lists ids, names, roles and dates. A revoked
key stays listed (with `revoked_at`) so the log of who could do what is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field

from genloop.catalog.models import ApiKey
from genloop.server.auth import ROLES, Role, create_api_key, list_api_keys, requires, revoke_api_key
from genloop.server.deps import CatalogDep
from genloop.server.errors import ERROR_RESPONSES, ErrorBody

router = APIRouter(prefix="/api/v1", tags=["keys"])

STORE_WARNING = "Store this secret now (a password manager, a secret store): it is never shown again."


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="Who or what uses the key.")
    role: Role = Field(description=f"One of {', '.join(ROLES)} (each includes the ones before).")


class KeyPublic(BaseModel):
    id: str
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    secret: str = Field(description="The key itself: send it as `Authorization: Bearer <secret>`.")
    warning: str = STORE_WARNING


def _public(key: ApiKey) -> KeyPublic:
    return KeyPublic(
        id=key.id,
        name=key.name,
        role=key.role,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


def _find(catalog: CatalogDep, key_id: str) -> KeyPublic:
    return next(_public(key) for key in list_api_keys(catalog) if key.id == key_id)


@router.post(
    "/keys",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    operation_id="create_key",
    summary="Create an API key (the secret is in this response only)",
    responses={400: {"model": ErrorBody, "description": "Bad name or role"}},
    **requires("admin"),
)
def create_key(body: KeyCreate, catalog: CatalogDep) -> KeyCreated:
    created = create_api_key(catalog, name=body.name, role=body.role)
    public = _find(catalog, created.id)
    return KeyCreated(**public.model_dump(), secret=created.secret)


@router.get(
    "/keys",
    response_model=list[KeyPublic],
    operation_id="list_keys",
    summary="List API keys, revoked ones included (never their secrets)",
    **requires("admin"),
)
def list_keys(catalog: CatalogDep) -> list[KeyPublic]:
    return [_public(key) for key in list_api_keys(catalog)]


@router.delete(
    "/keys/{key_id}",
    response_model=KeyPublic,
    operation_id="revoke_key",
    summary="Revoke an API key: it stops working at once, on every worker",
    responses=ERROR_RESPONSES,
    **requires("admin"),
)
def revoke_key(key_id: Annotated[str, Path(max_length=16)], catalog: CatalogDep) -> KeyPublic:
    revoke_api_key(catalog, key_id)
    return _find(catalog, key_id)
