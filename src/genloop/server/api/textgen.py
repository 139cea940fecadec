"""`POST /api/v1/generate/text`: a continuation from a small text model, answered while you wait.

    {model, prompt, max_new_tokens ≤ 200, temperature?, top_k?, top_p?, seed?}
      → {text, model_version, tokens, ms, seed, ai_generated: true, label: {GB 45438 fields}}

Role: **editor**. Generating is an editor's right in the role table (`server/auth.py`:
"editor + generate, publish, train"), and this route is the most expensive one per
request (CPU seconds a call) whose output has passed no safety check or review: a viewer
key (read-only dashboards) should not be able to spend the server's CPUs or draw
unreviewed text from a model. Keys are not rate-limited here; the pool's queue is the
back-pressure.

The work never runs on the event loop: the route resolves the model reference in the
thread pool (catalog I/O), then awaits a persistent worker process
(`genloop.server.textgen_pool`), which decodes it together with the other requests it holds
(`GENLOOP_TEXTGEN_MAX_BATCH`, default 8) without changing its text: a seed gives the same
text alone or in any batch. The pool starts on the first request (spawning takes a
second or two; most servers never generate text) and stops with the app: this router's
`lifespan` is merged into the app's by `include_router`, and a `weakref.finalize` in the
pool covers an app whose lifespan never ran.

The text is not a published item and not stored; it is still AI-generated, so the answer
carries `ai_generated: true` and the implicit-label fields of GB 45438 (`ContentProducer`
from `[generate].producer`, `ProduceID` a hash of model version, request and text) for a
client to show or embed. Same model version + prompt + parameters + seed → same text.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from genloop.catalog import Catalog
from genloop.catalog.models import ModelVersion
from genloop.errors import GenloopError
from genloop.generate.labels.implicit import aigc_label
from genloop.models.versions import LIST_HINT, resolve_model_version
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep, WorkspaceDep
from genloop.server.errors import ERROR_RESPONSES, ErrorBody
from genloop.server.textgen_pool import (
    TEXT_FAMILIES,
    TextGenPool,
    TextJob,
    WorkerCrashedError,
    max_batch_from_env,
    nice_from_env,
    worker_count_from_env,
)

MAX_NEW_TOKENS = 200
MAX_PROMPT_CHARS = 1000
REQUEST_TIMEOUT_S = 120.0
_POOL_LOCK = threading.Lock()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    pool: TextGenPool | None = getattr(app.state, "textgen_pool", None)
    if pool is not None:
        await run_in_threadpool(pool.close)


router = APIRouter(prefix="/api/v1", tags=["generate"], lifespan=_lifespan)


class TextGenerationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$",
        description="A model version (NAME-vN), NAME@ALIAS, or NAME (its champion).",
        examples=["fortunes", "fortunes-v3", "fortunes@challenger"],
    )
    prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS, description="Text to continue.")
    max_new_tokens: int = Field(default=50, ge=1, le=MAX_NEW_TOKENS)
    temperature: float = Field(default=1.0, ge=0.0, le=5.0, description="0 = greedy decoding.")
    top_k: int | None = Field(default=None, ge=1, le=100_000, description="Keep the k likeliest tokens.")
    top_p: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Nucleus: keep the likeliest tokens up to this probability."
    )
    seed: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="Same seed, same text; omitted: a random one."
    )


class AigcLabelFields(BaseModel):
    """The implicit AI-generated label of GB 45438-2025 (Annex E), as it would be embedded."""

    Label: str
    ContentProducer: str
    ProduceID: str
    ReservedCode1: str
    ContentPropagator: str
    PropagateID: str
    ReservedCode2: str


class TextGenerationPublic(BaseModel):
    text: str
    model_version: str
    tokens: int = Field(description="New tokens generated (fewer than asked when the model ended the text).")
    ms: float = Field(description="Time in the server: queueing, model loading (first use) and decoding.")
    seed: int
    ai_generated: Literal[True] = True
    label: AigcLabelFields


_FAMILIES: dict[tuple[str, str], str] = {}
"""(catalog url, version id) → family. A version's family never changes, so it is read once per
process (a profile of the served route had this read at ≈ 19 % of the server process's busy
time); the reference → version step stays uncached: an alias may move, and two workers must
agree on it."""


def _version_family(catalog: Catalog, version_id: str) -> str | None:
    key = (catalog.url, version_id)
    if key not in _FAMILIES:
        with catalog.session() as session:
            row = session.get(ModelVersion, version_id)
            if row is None:
                return None
            _FAMILIES[key] = row.family
    return _FAMILIES[key]


def _resolve_text_model(catalog: Catalog, ref: str) -> str:
    version_id = resolve_model_version(catalog, ref)
    family = _version_family(catalog, version_id)
    if family not in TEXT_FAMILIES:
        raise GenloopError(
            f"model version {version_id} is a {family!r} model; text generation serves "
            f"{', '.join(TEXT_FAMILIES)} models",
            hint=LIST_HINT,
        )
    return version_id


def _pool(app: FastAPI, workspace_root: str, database_url: str) -> TextGenPool:
    pool: TextGenPool | None = getattr(app.state, "textgen_pool", None)
    if pool is None:
        with _POOL_LOCK:
            pool = getattr(app.state, "textgen_pool", None)
            if pool is None:
                pool = TextGenPool(
                    Path(workspace_root),
                    database_url,
                    worker_count_from_env(),
                    max_batch_from_env(),
                    nice_from_env(),
                ).start()
                app.state.textgen_pool = pool
    return pool


def produce_id(version_id: str, body: TextGenerationCreate, seed: int, text: str) -> str:
    """A content hash of what made the text and the text: the same request gives the same id."""
    material = {
        "model_version": version_id,
        "prompt": body.prompt,
        "max_new_tokens": body.max_new_tokens,
        "temperature": body.temperature,
        "top_k": body.top_k,
        **({"top_p": body.top_p} if body.top_p is not None else {}),  # ids from before top_p unchanged
        "seed": seed,
        "text": text,
    }
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


@router.post(
    "/generate/text",
    response_model=TextGenerationPublic,
    operation_id="generate_text",
    summary="Continue a prompt with a text model (persistent worker processes; not stored)",
    responses={
        **ERROR_RESPONSES,
        400: {"model": ErrorBody, "description": "Not a text model, or invalid parameters"},
        503: {"model": ErrorBody, "description": "A worker died or the server is stopping: retry"},
        504: {"model": ErrorBody, "description": "Generation took longer than the server waits"},
    },
    **requires("editor"),
)
async def generate_text(
    body: TextGenerationCreate, request: Request, catalog: CatalogDep, workspace: WorkspaceDep
) -> TextGenerationPublic:
    started = time.perf_counter()
    version_id, producer = await run_in_threadpool(  # one hop to the thread pool: catalog I/O
        lambda: (_resolve_text_model(catalog, body.model), workspace.config.generate.producer)
    )
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    job = TextJob(
        version_id, body.prompt, body.max_new_tokens, body.temperature, body.top_k, seed, top_p=body.top_p
    )
    pool = _pool(request.app, str(workspace.root), catalog.url)
    try:
        result = await asyncio.wait_for(pool.generate(job), REQUEST_TIMEOUT_S)
    except WorkerCrashedError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, exc.message) from None
    except TimeoutError:
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            f"generation took over {REQUEST_TIMEOUT_S:.0f} s; ask for fewer tokens or retry later",
        ) from None
    label = aigc_label(
        producer=producer,
        produce_id=produce_id(version_id, body, seed, result.text),
        model_version=version_id,
    )
    return TextGenerationPublic(
        text=result.text,
        model_version=version_id,
        tokens=result.tokens,
        ms=round((time.perf_counter() - started) * 1000, 2),
        seed=seed,
        label=AigcLabelFields(**label),
    )
