"""`POST /api/v1/generations` (editor): check a generation request, queue it as a job, answer 202.

The request is planned before anything is queued: the model reference must resolve,
the classes must be the model's, prompts go to text models only, the channel must exist
and the number of items stays under `MAX_ITEMS`. Planning reads the model's config.json,
never its weights; a worker process (`genloop worker`) does the sampling. The job's
params name the resolved model version, so "digits@champion" means the champion at the
time of the request even if the alias moves before a worker gets to it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from genloop.errors import GenloopError
from genloop.generate.engine import plan
from genloop.jobs import queue
from genloop.jobs.handlers import generation_request
from genloop.server.auth import Principal, requires
from genloop.server.deps import CatalogDep, WorkspaceDep
from genloop.server.errors import ERROR_RESPONSES, ErrorBody

router = APIRouter(prefix="/api/v1", tags=["generations"])

MAX_ITEMS = 5_000
"""Items one request may ask for; bulk generation beyond it is `genloop generate` on the machine."""

Label = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Prompt = Annotated[str, StringConstraints(max_length=2_000)]
ParamKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Scalar = Annotated[str, StringConstraints(max_length=256)] | int | float | bool | None
ParamValue = Scalar | Annotated[list[Scalar], Field(max_length=32)]


class GenerationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        max_length=160,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$",
        description="A version (digits-v2), an alias (digits@champion) or a model name (its champion).",
    )
    labels: Annotated[list[Label], Field(max_length=100)] | None = Field(
        default=None, description="Image and music models: classes to draw (default: all)."
    )
    prompts: Annotated[list[Prompt], Field(max_length=64)] | None = Field(
        default=None, description="Text models: prompts to continue."
    )
    count: int | None = Field(
        default=None, ge=1, le=1_000, description="Items per prompt; also per class when per_class is unset."
    )
    per_class: int | None = Field(default=None, ge=1, le=1_000, description="Items per class.")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    max_new_tokens: int | None = Field(default=None, ge=1, le=4_096)
    params: Annotated[dict[ParamKey, ParamValue], Field(max_length=32)] | None = Field(
        default=None, description="Sampling parameters (temperature, top_k, top_p, steps, ...)."
    )
    channel: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class GenerationAccepted(BaseModel):
    job_id: str
    status: str
    status_url: str
    events_url: str
    model_version: str
    modality: str
    items: int
    """Items the request stands for (some may exist already: a re-run makes only the rest)."""


@router.post(
    "/generations",
    response_model=GenerationAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="create_generation",
    summary="Queue a generation job (checked first: unknown model or class → 4xx, nothing queued)",
    responses={**ERROR_RESPONSES, 400: {"model": ErrorBody, "description": "The request cannot be planned"}},
    **requires("editor"),
)
def create_generation_route(
    request: Request, catalog: CatalogDep, workspace: WorkspaceDep, body: GenerationCreate
) -> GenerationAccepted:
    config = workspace.config
    params: dict[str, Any] = body.model_dump(exclude_none=True)
    channel = params.get("channel")
    if channel is not None and channel != config.generate.channel and channel not in config.channels:
        known = sorted({config.generate.channel, *config.channels})
        raise GenloopError(
            f"unknown channel {channel!r}", hint=f"channels in genloop.toml: {', '.join(known)}"
        )
    item_plan = plan(workspace, catalog, generation_request(params, config), config)
    if len(item_plan.items) > MAX_ITEMS:
        raise GenloopError(
            f"the request stands for {len(item_plan.items):,} items; one request may ask for {MAX_ITEMS:,}",
            hint="split it into several requests, or run `genloop generate` on the machine",
        )
    principal: Principal = request.state.principal
    job_params = {**params, "model": item_plan.version_id, "model_ref": body.model}
    job_id = queue.enqueue(catalog, "generate", job_params, created_by=principal.key_id)
    return GenerationAccepted(
        job_id=job_id,
        status="queued",
        status_url=str(request.app.url_path_for("get_job", job_id=job_id)),
        events_url=str(request.app.url_path_for("follow_job", job_id=job_id)),
        model_version=item_plan.version_id,
        modality=item_plan.modality,
        items=len(item_plan.items),
    )
