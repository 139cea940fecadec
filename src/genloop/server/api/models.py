"""Model versions: list and inspect (viewer); promote, roll back, archive (editor).

    GET  /api/v1/models                       versions, newest first per model, with aliases
    GET  /api/v1/models/{ref}                 metrics, aliases, gate results, alias history
    POST /api/v1/models/{ref}/promote         {alias, force?, reason?}: through the [[gates]]
    POST /api/v1/models/{name}/rollback       {alias}: back to the version before the last move
    POST /api/v1/models/{ref}/archive         {restore?}

`ref` is anything `genloop models` accepts: `digits-v2`, `digits@challenger`, `digits`.
A promotion the gates refuse answers 409 with every failing rule in `detail` and each
gate's numbers in `gates`; forcing past them needs a `reason`, which the history keeps
with the API key's name as the actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from genloop.catalog.models import Evaluation, ModelVersion
from genloop.feedback.events import as_utc
from genloop.models.gates import GateError, GateResult, check_gates
from genloop.models.versions import (
    CHAMPION,
    AliasMove,
    ModelVersionInfo,
    alias_history,
    archive,
    list_model_versions,
    promote,
    resolve_model_version,
    rollback,
)
from genloop.server.auth import Principal, requires
from genloop.server.deps import CatalogDep, WorkspaceDep
from genloop.server.errors import ERROR_RESPONSES, ErrorBody

router = APIRouter(prefix="/api/v1", tags=["models"])

REF = Annotated[str, Path(max_length=160, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")]
ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
HISTORY_SHOWN = 50


class GatePublic(BaseModel):
    metric: str
    rule: str
    passed: bool
    candidate: float | None
    reference: float | None
    bound: float | None
    message: str
    needs_evaluation: bool


class EvaluationPublic(BaseModel):
    dataset_version_id: str
    metrics: dict[str, Any]
    created_at: datetime


class ModelSummary(BaseModel):
    id: str
    name: str
    version: int
    family: str
    run_id: str
    parent_id: str | None
    feedback_count: int
    aliases: list[str]
    created_at: datetime
    archived_at: datetime | None
    latest_evaluation: EvaluationPublic | None


class ModelPage(BaseModel):
    items: list[ModelSummary]
    limit: int
    offset: int
    has_more: bool


class AliasEventPublic(BaseModel):
    alias: str
    from_version_id: str | None
    to_version_id: str
    action: str
    actor: str
    forced: bool
    reason: str | None
    created_at: datetime


class ModelDetail(ModelSummary):
    evaluations: list[EvaluationPublic]
    gates: list[GatePublic]
    """This version's result for every gate guarding `champion` (empty: no [[gates]] apply)."""
    promotable: bool
    """Every gate passes (a promotion to champion would not be refused)."""
    history: list[AliasEventPublic]
    """The newest alias moves of this model (all its versions), newest first."""


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = Field(default=CHAMPION, max_length=64, pattern=ALIAS_PATTERN)
    force: bool = False
    reason: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _forced_needs_reason(self) -> PromoteBody:
        if self.force and not (self.reason or "").strip():
            raise ValueError("forcing a promotion past its gates needs a reason (it is kept in the history)")
        return self


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = Field(default=CHAMPION, max_length=64, pattern=ALIAS_PATTERN)
    reason: str | None = Field(default=None, max_length=2000)


class ArchiveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    restore: bool = False


class AliasMovePublic(BaseModel):
    name: str
    alias: str
    version_id: str
    previous_id: str | None
    moved: bool
    forced: bool
    gates: list[GatePublic]


class ArchivedPublic(BaseModel):
    id: str
    archived: bool


class GateRefusal(ErrorBody):
    gates: list[GatePublic]


def _gate(result: GateResult) -> GatePublic:
    return GatePublic(**result.as_json())


def _evaluations(catalog: Any, version_ids: list[str]) -> dict[str, list[EvaluationPublic]]:
    if not version_ids:
        return {}
    with catalog.session() as session:
        rows = session.scalars(
            select(Evaluation)
            .where(Evaluation.model_version_id.in_(version_ids))
            .order_by(Evaluation.created_at, Evaluation.id)
        ).all()
        found: dict[str, list[EvaluationPublic]] = {}
        for row in rows:
            found.setdefault(row.model_version_id, []).append(
                EvaluationPublic(
                    dataset_version_id=row.dataset_version_id,
                    metrics=dict(row.metrics),
                    created_at=as_utc(row.created_at),
                )
            )
    return found


def _summary(info: ModelVersionInfo, evaluations: list[EvaluationPublic]) -> ModelSummary:
    return ModelSummary(
        id=info.id,
        name=info.name,
        version=info.version,
        family=info.family,
        run_id=info.run_id,
        parent_id=info.parent_id,
        feedback_count=info.feedback_count,
        aliases=list(info.aliases),
        created_at=as_utc(info.created_at),
        archived_at=None if info.archived_at is None else as_utc(info.archived_at),
        latest_evaluation=evaluations[-1] if evaluations else None,
    )


def _move(move: AliasMove) -> AliasMovePublic:
    return AliasMovePublic(
        name=move.name,
        alias=move.alias,
        version_id=move.version_id,
        previous_id=move.previous_id,
        moved=move.moved,
        forced=move.forced,
        gates=[_gate(g) for g in move.gates],
    )


def _actor(request: Request) -> str:
    principal: Principal = request.state.principal
    return f"api:{principal.name}"[:128]


@router.get(
    "/models",
    response_model=ModelPage,
    operation_id="list_models",
    summary="Model versions (newest first per model) with aliases and latest evaluation",
    **requires("viewer"),
)
def list_models_route(
    catalog: CatalogDep,
    name: Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = None,
    include_archived: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ModelPage:
    versions = list_model_versions(catalog, name, include_archived=include_archived)
    page = versions[offset : offset + limit]
    evaluations = _evaluations(catalog, [v.id for v in page])
    return ModelPage(
        items=[_summary(v, evaluations.get(v.id, [])) for v in page],
        limit=limit,
        offset=offset,
        has_more=len(versions) > offset + limit,
    )


@router.get(
    "/models/{ref}",
    response_model=ModelDetail,
    operation_id="get_model",
    summary="One model version: evaluations, aliases, gate results, alias history",
    responses=ERROR_RESPONSES,
    **requires("viewer"),
)
def get_model_route(catalog: CatalogDep, workspace: WorkspaceDep, ref: REF) -> ModelDetail:
    version_id = resolve_model_version(catalog, ref)
    with catalog.session() as session:
        name = session.scalar(select(ModelVersion.name).where(ModelVersion.id == version_id))
    info = next(v for v in list_model_versions(catalog, name) if v.id == version_id)
    evaluations = _evaluations(catalog, [version_id]).get(version_id, [])
    gates = [_gate(g) for g in check_gates(catalog, version_id, workspace.config.gates, alias=CHAMPION)]
    history = alias_history(catalog, info.name)[-HISTORY_SHOWN:]
    return ModelDetail(
        **_summary(info, evaluations).model_dump(),
        evaluations=evaluations,
        gates=gates,
        promotable=info.archived_at is None and all(g.passed for g in gates),
        history=[
            AliasEventPublic(
                alias=e.alias,
                from_version_id=e.from_version_id,
                to_version_id=e.to_version_id,
                action=e.action,
                actor=e.actor,
                forced=e.forced,
                reason=e.reason,
                created_at=as_utc(e.created_at),
            )
            for e in reversed(history)
        ],
    )


@router.post(
    "/models/{ref}/promote",
    response_model=AliasMovePublic,
    operation_id="promote_model",
    summary="Point an alias (default champion) at this version if it passes the [[gates]]",
    responses={
        **ERROR_RESPONSES,
        409: {"model": GateRefusal, "description": "A gate failed: each failing rule is named in detail"},
    },
    **requires("editor"),
)
def promote_model_route(
    request: Request, catalog: CatalogDep, workspace: WorkspaceDep, ref: REF, body: PromoteBody
) -> AliasMovePublic | JSONResponse:
    try:
        move = promote(
            catalog,
            ref,
            alias=body.alias,
            gates=workspace.config.gates,
            force=body.force,
            reason=body.reason,
            actor=_actor(request),
        )
    except GateError as refused:
        refusal = GateRefusal(
            detail=refused.message, hint=refused.hint, gates=[_gate(g) for g in refused.results]
        )
        return JSONResponse(refusal.model_dump(), status_code=status.HTTP_409_CONFLICT)
    return _move(move)


@router.post(
    "/models/{name}/rollback",
    response_model=AliasMovePublic,
    operation_id="rollback_model",
    summary="Move NAME@alias back to the version it pointed at before its last move",
    responses=ERROR_RESPONSES,
    **requires("editor"),
)
def rollback_model_route(
    request: Request,
    catalog: CatalogDep,
    name: Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")],
    body: RollbackBody,
) -> AliasMovePublic:
    return _move(rollback(catalog, name, alias=body.alias, reason=body.reason, actor=_actor(request)))


@router.post(
    "/models/{ref}/archive",
    response_model=ArchivedPublic,
    operation_id="archive_model",
    summary="Archive a version (hidden from lists, never promoted, still loadable), or restore it",
    responses=ERROR_RESPONSES,
    **requires("editor"),
)
def archive_model_route(catalog: CatalogDep, ref: REF, body: ArchiveBody | None = None) -> ArchivedPublic:
    restore = body.restore if body is not None else False
    return ArchivedPublic(id=archive(catalog, ref, restore=restore), archived=not restore)
