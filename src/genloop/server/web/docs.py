"""`/docs`: the API reference as a local page, built from the app's own OpenAPI schema.

Swagger UI and ReDoc load their JavaScript from a CDN, which an offline machine (or a
strict Content-Security-Policy) cannot reach; this page needs nothing but the
server. Machines read `/openapi.json`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from genloop.server.deps import TemplatesDep

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


def _schema_name(schema: dict[str, Any] | None) -> str:
    """'FeedbackCreate' for a $ref, 'array of X', or the plain type."""
    if not schema:
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema.get('items'))}"
    if "anyOf" in schema:
        return " | ".join(_schema_name(option) for option in schema["anyOf"])
    return str(schema.get("type", "object"))


def _operation(path: str, method: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = spec.get("requestBody", {}).get("content", {})
    responses = spec.get("responses", {})
    return {
        "method": method.upper(),
        "path": path,
        "operation_id": spec.get("operationId", ""),
        "summary": spec.get("summary", ""),
        "parameters": [
            {
                "name": param["name"],
                "in": param["in"],
                "required": param.get("required", False),
                "type": _schema_name(param.get("schema")),
            }
            for param in spec.get("parameters", [])
        ],
        "request_body": {media: _schema_name(item.get("schema")) for media, item in body.items()},
        "responses": [
            {
                "status": code,
                "description": response.get("description", ""),
                "schema": ", ".join(
                    _schema_name(item.get("schema"))
                    for item in response.get("content", {}).values()
                    if item.get("schema")
                ),
            }
            for code, response in sorted(responses.items())
        ],
    }


def operations_by_tag(openapi: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, methods in openapi.get("paths", {}).items():
        for method, spec in methods.items():
            tag = (spec.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append(_operation(path, method, spec))
    return groups


@router.get("/docs", name="api_docs")
def api_docs(request: Request, templates: TemplatesDep) -> HTMLResponse:
    openapi = request.app.openapi()
    schemas = openapi.get("components", {}).get("schemas", {})
    context = {
        "active": "docs",
        "title": openapi["info"]["title"],
        "version": openapi["info"]["version"],
        "groups": operations_by_tag(openapi),
        "schemas": {
            name: json.dumps(schema, indent=2, ensure_ascii=False) for name, schema in schemas.items()
        },
    }
    page: HTMLResponse = templates.TemplateResponse(request, "docs.html", context)
    return page
