"""The gallery's feedback POST called directly (server/hot_routes.py) answers as the app's layers do.

Each scenario is sent to an app with the hot route and to one without (`hot_routes=False`),
on the same catalog (SQLite and PostgreSQL), with its viewers and keys tagged per side so
that neither sees the other's events; the answers are compared with those tags, ids and
times masked: status, headers (security headers, Retry-After, cookies' attributes) and
bodies (error details, validation errors, counts).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from genloop.catalog.models import FeedbackEvent
from genloop.feedback.ratelimit import RATE_LIMIT_ENV
from genloop.server.app import create_app
from genloop.server.auth import create_api_key
from genloop.server.deps import VIEWER_COOKIE

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog

FEEDBACK = "/api/v1/feedback"
JSON = {"content-type": "application/json"}


def _viewer(side: str, name: str) -> str:
    return f"{side}_{name}_0123456789abcdef"


def scenarios(pub: str) -> dict[str, Callable[[TestClient, str], list[httpx.Response]]]:
    """Name → requests sent by one side (its tag in viewers and keys)."""

    def post(client: TestClient, body: Any, **kwargs: Any) -> httpx.Response:
        return client.post(FEEDBACK, json=body, **kwargs)

    def with_viewer(client: TestClient, side: str, name: str) -> TestClient:
        client.cookies.set(VIEWER_COOKIE, _viewer(side, name))
        return client

    return {
        "a new viewer's like, then their dislike replacing it": lambda c, s: [
            post(c, {"publication_id": pub, "kind": "like"}),
            post(c, {"publication_id": pub, "kind": "dislike"}),
        ],
        "a retry replayed, then the key reused for another event": lambda c, s: [
            post(
                with_viewer(c, s, "retry"),
                {"publication_id": pub, "kind": "like", "idempotency_key": f"{s}-k-0001"},
            ),
            post(c, {"publication_id": pub, "kind": "like", "idempotency_key": f"{s}-k-0001"}),
            post(c, {"publication_id": pub, "kind": "dislike", "idempotency_key": f"{s}-k-0001"}),
        ],
        "a rating with a value and a comment with text": lambda c, s: [
            post(with_viewer(c, s, "rater"), {"publication_id": pub, "kind": "rating", "value": 4}),
            post(c, {"publication_id": pub, "kind": "comment", "text": "很好看"}),
        ],
        "an unknown publication": lambda c, s: [post(c, {"publication_id": "no-such-pub", "kind": "like"})],
        "an unknown kind": lambda c, s: [post(c, {"publication_id": pub, "kind": "love"})],
        "a field the gallery may not send": lambda c, s: [
            post(c, {"publication_id": pub, "kind": "like", "viewer_id": "someone-else"})
        ],
        "JSON that does not parse": lambda c, s: [c.post(FEEDBACK, content=b'{"kind": ', headers=JSON)],
        "a body that is not JSON": lambda c, s: [
            c.post(FEEDBACK, content=b"kind=like", headers={"content-type": "text/plain"}),
            c.post(FEEDBACK, data={"publication_id": pub, "kind": "like"}),
        ],
        "a refusal asked for as a page": lambda c, s: [
            c.post(
                FEEDBACK, content=b"kind=like", headers={"content-type": "text/plain", "accept": "text/html"}
            )
        ],
        "a body over the limit, declared": lambda c, s: [
            c.post(FEEDBACK, content=b'{"pad": "' + b"x" * 60_000 + b'"}', headers=JSON)
        ],
        "a body over the app's limit (16 KiB) and under the route's (48 KiB)": lambda c, s: [
            post(with_viewer(c, s, "long"), {"publication_id": pub, "kind": "comment", "text": "好" * 2730}),
            post(c, {"publication_id": pub, "kind": "comment", "text": "x" * 20_000}),
        ],
        "a body over the limit, streamed": lambda c, s: [
            c.post(FEEDBACK, content=iter([b'{"pad": "', b"x" * 30_000, b"x" * 30_000, b'"}']), headers=JSON)
        ],
        "a malformed viewer cookie, replaced": lambda c, s: [
            post(_set_cookie(c, "bad id; injected=1"), {"publication_id": pub, "kind": "click"})
        ],
        "a viewer over the rate limit": lambda c, s: [
            post(with_viewer(c, s, "busy"), {"publication_id": pub, "kind": "impression"}) for _ in range(3)
        ],
        "another method on the path": lambda c, s: [c.get(FEEDBACK), c.put(FEEDBACK, json={})],
    }


def _set_cookie(client: TestClient, value: str) -> TestClient:
    client.cookies.set(VIEWER_COOKIE, value)
    return client


_VARYING_HEADERS = {"date", "x-request-id", "content-length"}


def _masked(response: httpx.Response, side: str) -> tuple[int, dict[str, str], str]:
    """Status, headers and body with what differs per side or per run masked."""
    headers = {k: v for k, v in response.headers.items() if k not in _VARYING_HEADERS}
    if "set-cookie" in headers:
        headers["set-cookie"] = re.sub(f"{VIEWER_COOKIE}=[^;]*", f"{VIEWER_COOKIE}=*", headers["set-cookie"])
    body = response.text.replace(side, "SIDE")
    body = re.sub(r'"id":\d+', '"id":*', body)
    body = re.sub(r'"dedup:[0-9a-f]+"', '"dedup:*"', body)  # derived from the viewer id and the event's
    body = re.sub(r'"created_at":"[^"]*"', '"created_at":*', body)
    return response.status_code, headers, body


@pytest.fixture
def both(seeded: SeededCatalog, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, TestClient]]:
    monkeypatch.setenv(RATE_LIMIT_ENV, "2/60")
    with (
        TestClient(create_app(seeded.workspace), raise_server_exceptions=False) as hot,
        TestClient(create_app(seeded.workspace, hot_routes=False), raise_server_exceptions=False) as layered,
    ):
        yield {"hot": hot, "layered": layered}


@pytest.mark.parametrize("scenario", list(scenarios("PUB")))
def test_the_hot_route_answers_as_the_apps_layers_do(
    seeded: SeededCatalog, both: dict[str, TestClient], scenario: str
) -> None:
    send = scenarios(seeded.publication_ids[0])[scenario]
    hot = [_masked(r, "hot") for r in send(both["hot"], "hot")]
    layered = [_masked(r, "layered") for r in send(both["layered"], "layered")]
    if "under the route's" in scenario:  # escaped as JSON, 8,190 bytes of text are 16,450 of body
        assert [status for status, _, _ in hot] == [201, 422], hot
    assert len(hot) == len(layered)
    assert hot == layered, "\n".join(f"{a!r}\n{b!r}" for a, b in zip(hot, layered, strict=True) if a != b)
    assert all(status < 500 for status, _, _ in hot)


def test_refused_bodies_store_nothing_and_the_access_log_names_the_route(
    seeded: SeededCatalog, both: dict[str, TestClient]
) -> None:
    client = both["hot"]
    refused = {
        "a body over the limit, declared": 413,
        "a body over the limit, streamed": 413,
        "JSON that does not parse": 422,
    }
    for send, status in refused.items():
        assert scenarios(seeded.publication_ids[0])[send](client, "hot")[0].status_code == status
    with seeded.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(FeedbackEvent)) == 0
    viewer = create_api_key(seeded.catalog, name="prometheus", role="viewer")
    metrics = client.get("/metrics", headers={"authorization": f"Bearer {viewer.secret}"}).text
    assert re.search(r'route="/api/v1/feedback",status="413"', metrics), metrics[:2000]


def test_an_unexpected_error_in_the_hot_route_is_the_same_500(
    seeded: SeededCatalog, both: dict[str, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from genloop.server.api import feedback

    async def broken(*_args: object) -> None:
        raise RuntimeError("the catalog fell over")

    monkeypatch.setattr(feedback, "record_grouped", broken)
    body = {"publication_id": seeded.publication_ids[0], "kind": "like"}
    answers = {side: client.post(FEEDBACK, json=body) for side, client in both.items()}
    assert answers["hot"].status_code == answers["layered"].status_code == 500
    assert answers["hot"].text == answers["layered"].text
    assert "fell over" not in answers["hot"].text  # no internals in the answer
