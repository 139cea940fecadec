"""Feedback out, as streamed JSONL (role viewer).

    GET /api/v1/exports/feedback.jsonl           every event, oldest first (feedback/export.py)
    GET /api/v1/exports/preference-pairs.jsonl   TRL prompt/chosen/rejected pairs

Both stream: rows are read from the catalog in pages while the response is written, so
an export of a large catalog holds one page in memory, not the whole table.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from genloop.feedback.analytics import StatsFilter
from genloop.feedback.export import iter_events, jsonl_lines, preference_pairs
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep, WorkspaceDep

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])

JSONL = "application/x-ndjson"
Kind = Literal["impression", "click", "like", "dislike", "rating", "edit", "comment", "flag"]
FilterText = Annotated[str | None, Query(min_length=1, max_length=160)]


def _jsonl_response(lines: Iterator[bytes], filename: str) -> StreamingResponse:
    return StreamingResponse(
        lines,
        media_type=JSONL,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get(
    "/feedback.jsonl",
    response_model=None,  # a JSONL stream, not one JSON document
    response_class=StreamingResponse,
    operation_id="export_feedback_jsonl",
    summary="Every feedback event as JSON lines, oldest first (viewer ids pseudonymised)",
    responses={200: {"content": {JSONL: {}}}},
    **requires("viewer"),
)
def export_feedback(
    catalog: CatalogDep,
    kind: Annotated[list[Kind] | None, Query(max_length=8)] = None,
    model_version_id: FilterText = None,
    model_name: FilterText = None,
    channel: FilterText = None,
    arm: FilterText = None,
    condition: FilterText = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    where = StatsFilter(
        model_version_id=model_version_id,
        model_name=model_name,
        channel=channel,
        arm=arm,
        condition=condition,
        since=since,
        until=until,
    )
    return _jsonl_response(jsonl_lines(iter_events(catalog, where=where, kinds=kind)), "feedback.jsonl")


@router.get(
    "/preference-pairs.jsonl",
    response_model=None,  # a JSONL stream, not one JSON document
    response_class=StreamingResponse,
    operation_id="export_preference_pairs_jsonl",
    summary="Preference pairs {prompt, chosen, rejected} (TRL) from votes on same-condition items and edits",
    responses={200: {"content": {JSONL: {}}}},
    **requires("viewer"),
)
def export_preference_pairs(
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    model_name: FilterText = None,
    max_pairs_per_condition: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> StreamingResponse:
    pairs = preference_pairs(
        workspace, catalog, model_name=model_name, max_pairs_per_condition=max_pairs_per_condition
    )
    return _jsonl_response(jsonl_lines(pairs), "preference-pairs.jsonl")
