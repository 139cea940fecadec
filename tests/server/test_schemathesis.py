"""Property-based requests from the app's own OpenAPI schema (schemathesis): never a 5xx.

Every operation in /openapi.json gets generated requests — valid ones (positive) and ones
that break the schema (negative) — through the ASGI transport (in-process, no network),
once anonymously and once with an admin key (created in the catalog, as a user would),
so both the refusals and the handlers behind them are exercised. The only property
checked is `not_a_server_error`: bad input must be a 4xx the client can act on.

The number of examples per operation is bounded and the generation derandomized, so the
run is reproducible and takes well under a minute. Every failing operation is collected
and reported together, with the request that broke it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from conftest import make_workspace
from genloop.catalog.session import close_all
from genloop.server.app import create_app
from genloop.server.auth import create_api_key
from genloop.workspace import DATABASE_URL_ENV
from server.conftest import seed_catalog

EXAMPLES_PER_MODE = int(os.environ.get("GENLOOP_SCHEMATHESIS_EXAMPLES", "6"))
"""Per operation and generation mode (positive, negative); raise it locally for a deeper run."""


@dataclass(frozen=True)
class Target:
    app: FastAPI
    admin_key: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One seeded SQLite workspace for the whole module (the schema is what varies, not the catalog)."""
    saved = os.environ.pop(DATABASE_URL_ENV, None)
    workspace = make_workspace(Path(tmp_path_factory.mktemp("schemathesis")) / "ws")
    seeded = seed_catalog(workspace)
    key = create_api_key(seeded.catalog, name="schemathesis", role="admin")
    yield Target(create_app(workspace), key.secret)
    close_all()
    if saved is not None:
        os.environ[DATABASE_URL_ENV] = saved


def _check_operation(operation: Any, headers: dict[str, str]) -> list[str]:
    """Up to two requests to `operation` that got a 5xx, each as a curl line and the body."""
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            strategies.append(operation.as_strategy(generation_mode=mode))
        except Exception:  # an operation with nothing to negate has no negative mode
            continue
    seen: list[str] = []

    @settings(
        max_examples=EXAMPLES_PER_MODE * len(strategies),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(*strategies))
    def run(case: schemathesis.Case) -> None:
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # the in-process transport re-raises what the app did not handle
            if len(seen) < 2:
                seen.append(f"500 {case.as_curl_command()}  →  unhandled {exc.__class__.__name__}: {exc}")
            return
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except Exception:
            if len(seen) < 2:
                body = response.text[:300].replace("\n", " ")
                seen.append(f"{response.status_code} {case.as_curl_command()}  →  {body}")

    run()
    return [f"{operation.method.upper()} {operation.path}: {line}" for line in seen]


def _server_errors(app: FastAPI, headers: dict[str, str]) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    return [line for operation in operations for line in _check_operation(operation, headers)]


@pytest.mark.parametrize("who", ["anonymous", "admin"])
def test_no_operation_answers_with_a_server_error(target: Target, who: str) -> None:
    headers = {"Authorization": f"Bearer {target.admin_key}"} if who == "admin" else {}
    assert len(target.app.openapi()["paths"]) > 20, "the OpenAPI schema lists almost no operations"
    failures = _server_errors(target.app, headers)
    assert not failures, "5xx from:\n" + "\n".join(failures)


def test_the_check_catches_a_server_error() -> None:
    """The harness itself: a route that fails on some input is reported, with its request."""
    app = FastAPI()

    @app.get("/fragile", operation_id="fragile")
    def fragile(n: int = 0) -> dict[str, int]:
        return {"inverse": 1 // n}  # ZeroDivisionError → 500 when n = 0

    failures = _server_errors(app, {})
    assert failures and failures[0].startswith("GET /fragile: 500")
