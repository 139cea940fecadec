"""The ad-copy studio over HTTP: check products, write ranked lines, list them, publish them as A/B arms.

    POST /api/v1/adcopy/check                              {products | table} → impossible constraints  viewer
    POST /api/v1/adcopy/generate                           {products | table, n, …} → ranked lines      editor
    GET  /api/v1/adcopy/products                           product ids with stored candidates           viewer
    GET  /api/v1/adcopy/products/{product_id}/candidates   the lines, rank, constraint status, arms     viewer
    POST /api/v1/adcopy/publications                       {channel, items: [{content_item_id, arm}]}   editor

Products come as a JSON list (`products`, the fields of a product table row) or as the table's
text (`table`: CSV with a header, or JSON lines). `check` writes nothing and needs no model, so
a viewer may run it; `generate` stores content items, so it needs an editor.

`generate` runs synchronously, capped at MAX_PRODUCTS products and MAX_LINES products × n lines
per request: the studio writes 10 lines for a product in ~2 s on one shared core (docs/benchmarks.md),
so a capped request answers in seconds, and adding a job kind would mean editing the jobs
queue's kinds and handlers, which this app does not own. Bigger batches: `genloop adcopy generate`.
Impossible constraints are a 400 naming each product and reason, and nothing is stored; a
payload of the wrong shape is a 422, and nothing is stored.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from genloop.apps.adcopy.constraints import impossible_report
from genloop.apps.adcopy.products import EXAMPLE, Product, products_from_rows
from genloop.apps.adcopy.shelf import candidate_json, list_candidates, list_products, publish_candidates
from genloop.apps.adcopy.studio import write_copy
from genloop.apps.adcopy.training import MODEL_NAME
from genloop.apps.tables import column_key, rows_from_text
from genloop.errors import GenloopError
from genloop.publish.channels.registry import ARM_NAME, CHANNEL_NAME, CONTENT_ID
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep, WorkspaceDep
from genloop.server.errors import ERROR_RESPONSES, ErrorBody

router = APIRouter(prefix="/api/v1/adcopy", tags=["adcopy"])

MAX_PRODUCTS = 10
MAX_LINES = 40
"""products × n per generate request (a few seconds of work); more: `genloop adcopy generate`."""
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
            hint="send fewer products or a smaller n; big tables: genloop adcopy generate products.csv",
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
    out = [
        ProductCopyOut(
            product_id=r.product.id,
            model_version=r.model_version,
            lines=[
                LineOut(
                    rank=line.rank,
                    text=line.text,
                    score=round(line.score, 4),
                    content_item_id=line.content_id,
                    repairs=line.candidate.repairs,
                )
                for line in r.lines
            ],
            sampled=r.sampled,
            dropped=dict(r.dropped),
            seconds=round(r.seconds, 3),
            impossible=r.impossible,
        )
        for r in results
    ]
    return GenerateOut(products=out, lines=sum(len(p.lines) for p in out))


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
