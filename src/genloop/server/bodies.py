"""JSON in and out of the hottest route without FastAPI's per-request machinery, same contract.

The anonymous feedback POST is the route the gallery calls for every click. Declared the
usual way (`body: FeedbackCreate` plus dependencies), FastAPI resolves its dependency
tree, decodes the body with `json.loads`, validates the resulting dict, then validates
and serialises the returned model again: ≈ 25 % of the event loop's time per request
(docs/benchmarks.md). Here the route takes the `Request`, and pydantic-core parses and
validates the raw bytes in one pass (`model_validate_json`) and writes the answer's bytes
(`to_json`), while the OpenAPI document still describes the same body and answer:

    @router.post("/x", response_model=Answer, openapi_extra=json_request_body(Body))
    async def route(request: Request) -> Response:
        body = await parse_json_body(request, Body)      # 422 as FastAPI words it
        return json_response(Answer(...), status_code=201)

A bad body is the same 422 `RequestValidationError` FastAPI raises, so the app's handler
answers it as for every other route (locations start with "body").
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

JSON_MEDIA_TYPE = "application/json"


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads `model` as its JSON body by hand (a flat model:
    its schema is inlined, so it must not refer to other models)."""
    schema = model.model_json_schema()
    if "$defs" in schema:
        raise TypeError(f"{model.__name__} nests other models; declare it as a body parameter instead")
    return {"requestBody": {"required": True, "content": {JSON_MEDIA_TYPE: {"schema": schema}}}}


async def parse_json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as `model`; a 422 `RequestValidationError` when it is not one."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError([_as_fastapi_error(e) for e in error.errors()]) from None


def _as_fastapi_error(error: Any) -> dict[str, Any]:
    """pydantic's error located in the body, as FastAPI reports it (`loc` starts with "body");
    undecodable JSON does not echo the body back."""
    located = {**error, "loc": ("body", *error["loc"])}
    if error["type"] == "json_invalid":
        located["input"] = {}
    located.pop("url", None)
    return located


def json_response(model: BaseModel, *, status_code: int = 200) -> Response:
    """`model` as a JSON response, serialised once by pydantic-core."""
    return Response(
        model.__pydantic_serializer__.to_json(model), status_code=status_code, media_type=JSON_MEDIA_TYPE
    )
