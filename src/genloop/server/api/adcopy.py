"""The ad-copy studio over HTTP: check products, write ranked lines (now or as a job), list, publish.

    POST /api/v1/adcopy/check                              {products | table} → impossible constraints  viewer
    POST /api/v1/adcopy/generate                           {products | table, n, …} → ranked lines      editor
    POST /api/v1/adcopy/jobs                               the same body → 202, an adcopy-generate job  editor
    GET  /api/v1/adcopy/products                           product ids with stored candidates           viewer
    GET  /api/v1/adcopy/products/{product_id}/candidates   the lines, rank, constraint status, arms     viewer
    POST /api/v1/adcopy/publications                       {channel, items: [{content_item_id, arm}]}   editor

Products come as a JSON list (`products`, the fields of a product table row) or as the table's
text (`table`: CSV with a header, or JSON lines). `check` writes nothing and needs no model, so
a viewer may run it; `generate` and `jobs` store content items, so they need an editor.

`generate` runs in the request, capped at MAX_PRODUCTS products and MAX_LINES products × n lines:
the studio writes 10 lines for a product in ~2 s on one shared core (docs/benchmarks.md), so a
capped request answers in seconds. Bigger batches (up to MAX_JOB_PRODUCTS products, n ≤ 40) go
to `jobs`: the products, the model and the constraints are checked first, then an
`adcopy-generate` job is queued for a worker process (`genloop worker`; see
genloop/jobs/handlers.py), which writes a few products at a time, reports "k of N products",
stops between products when cancelled, and leaves the same per-product lines as `generate` in
its result (GET /api/v1/jobs/{id}). The job's params name the resolved model version, so an
alias that moves before a worker gets to the job changes nothing.

Impossible constraints are a 400 naming each product and reason, and nothing is stored or
queued; a payload of the wrong shape is a 422, and nothing is stored or queued.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from genloop.apps.adcopy.constraints import impossible_report
from genloop.apps.adcopy.generator import FAMILIES
from genloop.apps.adcopy.products import EXAMPLE, Product, products_from_rows
from genloop.apps.adcopy.shelf import candidate_json, list_candidates, list_products, publish_candidates
from genloop.apps.adcopy.studio import ImpossibleConstraints, write_copy
from genloop.apps.adcopy.training import MODEL_NAME
from genloop.apps.tables import column_key, rows_from_text
from genloop.catalog import Catalog
from genloop.catalog.models import ModelVersion
from genloop.errors import GenloopError
from genloop.jobs import queue
from genloop.jobs.handlers import ADCOPY_MAX_N, adcopy_products, product_copy_json
from genloop.models.versions import resolve_model_version
from genloop.publish.channels.registry import ARM_NAME, CHANNEL_NAME, CONTENT_ID
from genloop.server.auth import Principal, requires
from genloop.server.deps import CatalogDep, WorkspaceDep
from genloop.server.errors import ERROR_RESPONSES, ErrorBody

router = APIRouter(prefix="/api/v1/adcopy", tags=["adcopy"])

MAX_PRODUCTS = 10
MAX_LINES = 40
"""products × n per generate request (a few seconds of work); more: POST /jobs."""
MAX_JOB_PRODUCTS = 500
"""Products one job may write for (at n=10, ~17 min of one worker); more: several jobs."""
MAX_JOB_TABLE_CHARS = 200_000
MAX_JOB_BODY_BYTES = 256 * 1024
"""The app's 16 KiB request cap holds ~60 products; a job's body may carry a few hundred."""
BIGGER_BATCHES = (
    f"bigger batches: POST /api/v1/adcopy/jobs (a background job, ≤ {MAX_JOB_PRODUCTS} products), "
    "or genloop adcopy generate products.csv"
)
BAD_INPUT: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    400: {"model": ErrorBody, "description": "A product is invalid or its constraints cannot be met"},
}
Short = Annotated[str, Field(max_length=200)]
Word = Annotated[str, Field(min_length=1, max_length=100)]
ProductId = Annotated[str, Path(min_length=1, max_length=200, description="A product id of your table.")]


class ProductIn(BaseModel):
    """One row of a product table (see `genloop adcopy check --help`)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"id": "p1", "name": "TrailLite"}}
    )

    id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    language: str = Field(min_length=1, max_length=16, description="en (length in words) or zh (characters).")
    max_length: int = Field(ge=1, le=1_000)
    category: Short = ""
    features: list[Word] = Field(default_factory=list, max_length=20)
    audience: Short = ""
    tone: Short = ""
    must_include: list[Word] = Field(default_factory=list, max_length=20)
    banned: list[Word] = Field(default_factory=list, max_length=50)


class ProductsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    products: list[ProductIn] | None = Field(default=None, min_length=1, max_length=200)
    table: str | None = Field(
        default=None,
        min_length=1,
        max_length=12_000,
        description="A product table: CSV with a header, or JSONL.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ProductsIn:
        if (self.products is None) == (self.table is None):
            raise ValueError("send exactly one of `products` (a JSON list) or `table` (CSV or JSONL text)")
        return self

    def read(self) -> list[Product]:
        """Validated products (a DataError → 400 names the row and the field)."""
        if self.products is not None:
            rows = [
                (number, {column_key(k): v for k, v in product.model_dump().items()})
                for number, product in enumerate(self.products, start=1)
            ]
            return products_from_rows(rows, FilePath("products"))
        assert self.table is not None  # the validator saw to it
        source = FilePath("table")
        return products_from_rows(rows_from_text(self.table, source, example=EXAMPLE), source)


class GenerateIn(ProductsIn):
    n: int = Field(
        default=5, ge=1, le=MAX_LINES, description=f"Lines per product (products × n ≤ {MAX_LINES})."
    )
    model: str = Field(
        default=MODEL_NAME, min_length=1, max_length=128, description="NAME, NAME@alias or NAME-vN."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    temperature: float = Field(default=0.9, ge=0.0, le=2.0)
    skip_impossible: bool = Field(default=False, description="Write for the others when some are impossible.")


class GenerateJobIn(GenerateIn):
    """GenerateIn with a job's limits: more products, n per product on its own."""

    products: list[ProductIn] | None = Field(default=None, min_length=1, max_length=MAX_JOB_PRODUCTS)
    table: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_JOB_TABLE_CHARS,
        description=f"A product table: CSV with a header, or JSONL (≤ {MAX_JOB_PRODUCTS} products).",
    )
    n: int = Field(default=5, ge=1, le=ADCOPY_MAX_N, description=f"Lines per product (≤ {ADCOPY_MAX_N}).")


class JobAccepted(BaseModel):
    job_id: str
    status: str
    status_url: str
    events_url: str
    model_version: str
    products: int
    """Products the job writes for (impossible ones skipped with skip_impossible are not counted)."""
    lines: int
    """At most this many lines: products × n (a line that fails a check is dropped, not replaced)."""
    impossible: dict[str, list[str]]
    """Products skipped (skip_impossible) → why no line can meet their constraints."""


class ProductOut(BaseModel):
    id: str
    name: str
    language: str
    max_length: int
    unit: str
    must_include: list[str]
    banned: list[str]


class CheckOut(BaseModel):
    products: list[ProductOut]
    impossible: dict[str, list[str]]
    """Product id → why no line can meet its constraints (empty: every product can be written)."""
    ok: bool


class LineOut(BaseModel):
    rank: int
    text: str
    score: float
    content_item_id: str
    repairs: list[str]


class ProductCopyOut(BaseModel):
    product_id: str
    model_version: str
    lines: list[LineOut]
    sampled: int
    dropped: dict[str, int]
    seconds: float
    impossible: list[str]


class GenerateOut(BaseModel):
    products: list[ProductCopyOut]
    lines: int


class ProductSummary(BaseModel):
    product_id: str
    candidates: int


class ProductList(BaseModel):
    items: list[ProductSummary]


class PublicationOut(BaseModel):
    id: str
    channel: str
    arm: str | None
    reactions: dict[str, int]
    """Feedback events on this publication by kind (impression, click, like, dislike, …)."""


class CandidateOut(BaseModel):
    content_item_id: str
    product_id: str
    text: str
    rank: int
    score: float
    model_version_id: str
    status: str
    created_at: datetime
    satisfied: bool
    """Every constraint of the product holds (re-checked now)."""
    violations: list[str]
    publications: list[PublicationOut]


class CandidateList(BaseModel):
    product_id: str
    items: list[CandidateOut]


class ArmChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_item_id: str = Field(pattern=f"^{CONTENT_ID.pattern}$")
    arm: str = Field(pattern=f"^{ARM_NAME.pattern}$", description="The A/B arm, e.g. A or B.")


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(default="gallery", pattern=f"^{CHANNEL_NAME.pattern}$")
    items: list[ArmChoice] = Field(min_length=1, max_length=100)


class PublishedOut(BaseModel):
    content_item_id: str
    publication_id: str
    arm: str | None


class PublishOut(BaseModel):
    channel: str
    items: list[PublishedOut]


def _product_out(product: Product) -> ProductOut:
    return ProductOut(
        id=product.id,
        name=product.name,
        language=product.language,
        max_length=product.max_length,
        unit=product.unit,
        must_include=list(product.must_include),
        banned=list(product.banned),
    )


@router.post(
    "/check",
    response_model=CheckOut,
    operation_id="check_adcopy_products",
    summary="Validate products and find constraints no line can meet (writes nothing, needs no model)",
    responses=BAD_INPUT,
    **requires("viewer"),
)
def check_route(body: ProductsIn) -> CheckOut:
    products = body.read()
    reasons = impossible_report(products)
    return CheckOut(products=[_product_out(p) for p in products], impossible=reasons, ok=not reasons)


@router.post(
    "/generate",
    response_model=GenerateOut,
    status_code=status.HTTP_201_CREATED,
    operation_id="generate_adcopy",
    summary=f"Write up to n ranked lines per product, each meeting its constraints (≤ {MAX_LINES} a call)",
    responses=BAD_INPUT,
    **requires("editor"),
)
def generate_route(workspace: WorkspaceDep, catalog: CatalogDep, body: GenerateIn) -> GenerateOut:
    products = body.read()
    if len(products) > MAX_PRODUCTS or len(products) * body.n > MAX_LINES:
        raise GenloopError(
            f"{len(products)} products × n={body.n} is more than one request writes "
            f"(at most {MAX_PRODUCTS} products and {MAX_LINES} lines)",
            hint=f"send fewer products or a smaller n; {BIGGER_BATCHES}",
        )
    results = write_copy(
        workspace,
        catalog,
        products,
        n=body.n,
        model=body.model,
        seed=body.seed,
        skip_impossible=body.skip_impossible,
        temperature=body.temperature,
    )
    out = [ProductCopyOut.model_validate(product_copy_json(r)) for r in results]
    return GenerateOut(products=out, lines=sum(len(p.lines) for p in out))


def _copy_model_version(catalog: Catalog, reference: str) -> str:
    """The version `reference` names now (404 if none), checked to be a text model ad copy can use."""
    version_id = resolve_model_version(catalog, reference)
    with catalog.session() as session:
        version = session.get(ModelVersion, version_id)
        family = version.family if version else ""
    if family not in FAMILIES:
        raise GenloopError(
            f"model {version_id} is a {family!r} model; ad copy needs a text model "
            f"({' or '.join(FAMILIES)}) trained on past copy",
            hint="train one: genloop adcopy train  (or --copy past.csv)",
        )
    return version_id


def _job_row(product: Product) -> dict[str, Any]:
    """A product as a job's params carry it: the table's fields, empty ones left out."""
    return {k: v for k, v in product.to_json().items() if k != "where" and v not in ("", [])}


@router.post(
    "/jobs",
    response_model=JobAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="queue_adcopy_generation",
    summary=f"Queue an adcopy-generate job for up to {MAX_JOB_PRODUCTS} products (checked first; "
    "bad products, impossible constraints or an unknown model → 4xx, nothing queued)",
    responses={**BAD_INPUT, 413: {"description": "Body too large"}},
    max_body_size=MAX_JOB_BODY_BYTES,
    **requires("editor"),
)
def queue_generation_route(request: Request, catalog: CatalogDep, body: GenerateJobIn) -> JobAccepted:
    products = body.read()
    if len(products) > MAX_JOB_PRODUCTS:
        raise GenloopError(
            f"the table has {len(products)} products; one job writes for at most {MAX_JOB_PRODUCTS}",
            hint="split the table into several jobs, or run genloop adcopy generate products.csv",
        )
    reasons = impossible_report(products)
    if reasons and not body.skip_impossible:
        raise ImpossibleConstraints(reasons, {p.id: p.where for p in products})
    if len(reasons) == len(products):
        raise GenloopError(
            "no product's constraints can be met; the job would write nothing",
            hint="fix must_include / banned / max_length (POST /api/v1/adcopy/check says why)",
        )
    version_id = _copy_model_version(catalog, body.model)
    params: dict[str, Any] = {
        "products": [_job_row(p) for p in products],
        "n": body.n,
        "model": version_id,
        "model_ref": body.model,
        "seed": body.seed,
        "temperature": body.temperature,
        "skip_impossible": body.skip_impossible,
    }
    adcopy_products(params)  # the worker reads them back the same way: a surprise there fails here
    principal: Principal = request.state.principal
    job_id = queue.enqueue(catalog, "adcopy-generate", params, created_by=principal.key_id)
    written = len(products) - len(reasons)
    return JobAccepted(
        job_id=job_id,
        status="queued",
        status_url=str(request.app.url_path_for("get_job", job_id=job_id)),
        events_url=str(request.app.url_path_for("follow_job", job_id=job_id)),
        model_version=version_id,
        products=written,
        lines=written * body.n,
        impossible=reasons,
    )


@router.get(
    "/products",
    response_model=ProductList,
    operation_id="list_adcopy_products",
    summary="Products with stored ad-copy candidates, and how many each has",
    **requires("viewer"),
)
def products_route(catalog: CatalogDep) -> ProductList:
    counts = list_products(catalog)
    return ProductList(items=[ProductSummary(product_id=p, candidates=n) for p, n in sorted(counts.items())])


@router.get(
    "/products/{product_id}/candidates",
    response_model=CandidateList,
    operation_id="list_adcopy_candidates",
    summary="A product's stored lines: newest generation first, by rank; constraints; arms, reactions",
    **requires("viewer"),
)
def candidates_route(
    catalog: CatalogDep, product_id: ProductId, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> CandidateList:
    items = [
        CandidateOut.model_validate(candidate_json(c))
        for c in list_candidates(catalog, product_id, limit=limit)
    ]
    return CandidateList(product_id=product_id, items=items)


@router.post(
    "/publications",
    response_model=PublishOut,
    status_code=status.HTTP_201_CREATED,
    operation_id="publish_adcopy_candidates",
    summary="Publish chosen candidates on a channel, each with its A/B arm (all checked before any)",
    responses={**BAD_INPUT, 404: {"model": ErrorBody, "description": "Not an ad-copy candidate"}},
    **requires("editor"),
)
def publish_route(workspace: WorkspaceDep, catalog: CatalogDep, body: PublishIn) -> PublishOut:
    choices = [(item.content_item_id, item.arm) for item in body.items]
    published = publish_candidates(workspace, catalog, choices, channel=body.channel)
    return PublishOut(
        channel=body.channel,
        items=[PublishedOut(content_item_id=c, publication_id=p, arm=a) for c, p, a in published],
    )
