"""The JSON API on a real catalog (SQLite and PostgreSQL), through real HTTP requests."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from genloop.catalog.models import ContentItem, FeedbackEvent
from genloop.server.app import create_app
from genloop.server.auth import create_api_key
from genloop.server.deps import VIEWER_COOKIE

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog


def vote(client: TestClient, publication_id: str, kind: str = "like", **extra: object) -> httpx.Response:
    return client.post("/api/v1/feedback", json={"publication_id": publication_id, "kind": kind, **extra})


def event_count(seeded: SeededCatalog) -> int:
    with seeded.catalog.session() as session:
        return session.scalar(select(func.count()).select_from(FeedbackEvent)) or 0


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["catalog"] == "ok"


def test_publications_newest_first_with_fields(client: TestClient, seeded: SeededCatalog) -> None:
    response = client.get("/api/v1/publications")
    assert response.status_code == 200
    page = response.json()
    assert page["has_more"] is False
    items = page["items"]
    assert [item["publication_id"] for item in items] == list(reversed(seeded.publication_ids))
    newest = items[0]
    assert newest["content_id"] == seeded.content_ids[-1]
    assert newest["model_version_id"] == "digits-v2"
    assert newest["model_version"] == 2
    assert newest["label"] == "5"
    assert newest["ai_generated_note"] == "AI生成 / AI-generated"
    assert (newest["likes"], newest["dislikes"]) == (0, 0)
    image = client.get(newest["image_url"])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_publications_paging_and_model_filter(client: TestClient, seeded: SeededCatalog) -> None:
    first = client.get("/api/v1/publications", params={"limit": 4}).json()
    second = client.get("/api/v1/publications", params={"limit": 4, "offset": 4}).json()
    assert first["has_more"] is True
    assert second["has_more"] is False
    ids = [item["publication_id"] for item in first["items"] + second["items"]]
    assert ids == list(reversed(seeded.publication_ids))
    only_v1 = client.get("/api/v1/publications", params={"model_version_id": "digits-v1"}).json()
    assert {item["model_version_id"] for item in only_v1["items"]} == {"digits-v1"}
    assert len(only_v1["items"]) == 3
    assert client.get("/api/v1/publications", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/publications", params={"limit": 10_000}).status_code == 422


def test_content_detail_and_404(client: TestClient, seeded: SeededCatalog) -> None:
    content_id = seeded.content_ids[0]
    response = client.get(f"/api/v1/content/{content_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == content_id
    assert body["model_version_id"] == "digits-v1"
    assert body["label"] == "0"
    assert body["labels"]["implicit"]["AIGC"]["Label"] == "1"
    assert [pub["publication_id"] for pub in body["publications"]] == [seeded.publication_ids[0]]
    assert client.get(body["lineage_url"]).status_code == 200

    missing = client.get("/api/v1/content/does-not-exist")
    assert missing.status_code == 404
    assert "does-not-exist" in missing.json()["detail"]
    assert client.get("/api/v1/content/does-not-exist/file").status_code == 404


def test_file_route_serves_only_catalogued_content(client: TestClient, seeded: SeededCatalog) -> None:
    secret = seeded.workspace.root / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nnot for you")
    content_id = seeded.content_ids[0]
    with seeded.catalog.session() as session:
        item = session.get(ContentItem, content_id)
        assert item is not None
        item.path = str(secret)  # a tampered row pointing outside .genloop/content/
    response = client.get(f"/api/v1/content/{content_id}/file")
    assert response.status_code == 404
    assert b"not for you" not in response.content
    for attempt in ("..%2F..%2Fgenloop.toml", "%2Fetc%2Fpasswd", "../../../etc/passwd"):
        assert client.get(f"/api/v1/content/{attempt}/file").status_code == 404


def test_feedback_records_event_and_sets_viewer_cookie(client: TestClient, seeded: SeededCatalog) -> None:
    publication_id = seeded.publication_ids[0]
    response = vote(client, publication_id, "like")
    assert response.status_code == 201
    event = response.json()
    assert event["publication_id"] == publication_id
    assert event["kind"] == "like"
    assert event["replayed"] is False
    assert (event["likes_change"], event["dislikes_change"]) == (1, 0)

    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{VIEWER_COOKIE}=")
    assert "HttpOnly" in set_cookie
    assert "SameSite=strict" in set_cookie or "SameSite=Strict" in set_cookie
    viewer_id = client.cookies[VIEWER_COOKIE]

    second = vote(client, publication_id, "dislike")
    assert second.status_code == 201
    assert "set-cookie" not in second.headers  # the viewer keeps the id it has
    # The viewer changed their mind: both events are kept, only the latest reaction counts.
    assert (second.json()["likes_change"], second.json()["dislikes_change"]) == (-1, 1)
    with seeded.catalog.session() as session:
        rows = session.scalars(select(FeedbackEvent).order_by(FeedbackEvent.id)).all()
    assert [(row.publication_id, row.kind, row.viewer_id) for row in rows] == [
        (publication_id, "like", viewer_id),
        (publication_id, "dislike", viewer_id),
    ]


def test_feedback_idempotency_key(client: TestClient, seeded: SeededCatalog) -> None:
    key = str(uuid.uuid4())
    first = vote(client, seeded.publication_ids[1], "like", idempotency_key=key)
    again = vote(client, seeded.publication_ids[1], "like", idempotency_key=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["replayed"] is True
    assert again.json()["likes_change"] == 0
    assert event_count(seeded) == 1

    conflict = vote(client, seeded.publication_ids[1], "dislike", idempotency_key=key)
    assert conflict.status_code == 409
    assert "already used" in conflict.json()["detail"]
    assert event_count(seeded) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"publication_id": "pub-00", "kind": "love"},
        {"publication_id": "pub-00"},
        {"kind": "like"},
        {"publication_id": "pub-00", "kind": "like", "viewer_id": "someone-else"},
        {"publication_id": "x" * 65, "kind": "like"},
        {"publication_id": "pub-00", "kind": "like", "idempotency_key": "short"},
        {"publication_id": "pub-00", "kind": "like", "idempotency_key": "has spaces in it"},
        {"publication_id": "pub-00", "kind": "like", "idempotency_key": "k" * 129},
    ],
)
def test_feedback_bad_payloads_are_422(client: TestClient, seeded: SeededCatalog, body: dict) -> None:
    response = client.post("/api/v1/feedback", json=body)
    assert response.status_code == 422, response.text
    assert event_count(seeded) == 0


def test_feedback_unknown_kind_names_the_allowed_ones(client: TestClient) -> None:
    response = vote(client, "pub-00", "love")
    assert response.status_code == 422
    assert "like, dislike" in response.text


def test_feedback_unknown_publication_is_404(client: TestClient, seeded: SeededCatalog) -> None:
    response = vote(client, "pub-unknown")
    assert response.status_code == 404
    assert "pub-unknown" in response.json()["detail"]
    assert event_count(seeded) == 0


def test_feedback_requires_json_content_type(client: TestClient, seeded: SeededCatalog) -> None:
    """What a cross-site HTML form or 'simple' fetch can send is refused (CSRF defence)."""
    body = '{"publication_id": "pub-00", "kind": "like"}'
    form = client.post("/api/v1/feedback", data={"publication_id": "pub-00", "kind": "like"})
    plain = client.post("/api/v1/feedback", content=body, headers={"content-type": "text/plain"})
    untyped = client.post("/api/v1/feedback", content=body)  # no Content-Type header at all
    assert [form.status_code, plain.status_code, untyped.status_code] == [415, 415, 415]
    assert event_count(seeded) == 0


def test_feedback_body_size_is_limited(client: TestClient, seeded: SeededCatalog) -> None:
    huge = '{"publication_id": "pub-00", "kind": "like", "pad": "' + "x" * 100_000 + '"}'
    response = client.post("/api/v1/feedback", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert event_count(seeded) == 0


def test_like_rate_numbers(client: TestClient, seeded: SeededCatalog) -> None:
    v1 = [pub for pub in seeded.publication_ids if seeded.model_of[pub] == "digits-v1"]
    for publication_id, kind in [(v1[0], "like"), (v1[0], "like"), (v1[1], "like"), (v1[2], "dislike")]:
        assert vote(client, publication_id, kind).status_code == 201
    assert client.get("/api/v1/analytics/like-rate").status_code == 401  # analytics need a key
    key = create_api_key(seeded.catalog, name="dashboard", role="viewer").secret
    response = client.get("/api/v1/analytics/like-rate", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    rates = {row["model_version_id"]: row for row in response.json()}
    # The same viewer liking v1[0] twice is one like (the repeat is replayed, not stored).
    assert rates["digits-v1"]["likes"] == 2
    assert rates["digits-v1"]["dislikes"] == 1
    assert rates["digits-v1"]["publications"] == 3
    assert rates["digits-v1"]["like_rate"] == pytest.approx(2 / 3)
    assert rates["digits-v2"]["like_rate"] is None
    assert rates["digits-v2"]["votes"] == 0
    items = client.get("/api/v1/publications").json()["items"]
    counts = {item["publication_id"]: (item["likes"], item["dislikes"]) for item in items}
    assert counts[v1[0]] == (1, 0)
    assert counts[v1[2]] == (0, 1)


def test_lineage(client: TestClient, seeded: SeededCatalog) -> None:
    response = client.get(f"/api/v1/lineage/{seeded.content_ids[-1]}")
    assert response.status_code == 200
    lineage = response.json()
    assert lineage["content"]["id"] == seeded.content_ids[-1]
    model = lineage["model_version"]
    assert model["id"] == "digits-v2"
    assert model["parent"]["id"] == "digits-v1"
    chain = model["run"]["datasets"][0]["chain"]
    assert [version["stage"] for version in chain] == ["annotate", "collect"]
    assert chain[-1]["sources"][0]["license"] == "CC-BY-SA-3.0"
    missing = client.get("/api/v1/lineage/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["hint"]


def test_lineage_document_both_ways(client: TestClient, seeded: SeededCatalog) -> None:
    # From the model version digits-v1: down to the licensed sources, up to its fine-tune
    # (digits-v2) and the publications of both, with the feedback they received.
    assert vote(client, seeded.publication_ids[0]).status_code in (200, 201)
    response = client.get("/api/v1/lineage-document/digits-v1", params={"direction": "both", "events": True})
    assert response.status_code == 200
    document = response.json()
    assert document["subject"] == {"kind": "model_version", "id": "digits-v1"}
    assert "CC-BY-SA-3.0" in document["down"]["licenses"]
    up = document["up"]
    assert {model["id"] for model in up["model_versions"]} >= {"digits-v1", "digits-v2"}
    assert up["totals"]["feedback_events"] == 1
    assert [event["kind"] for event in up["events"]] == ["like"]
    assert up["totals"]["publications"] == len(seeded.publication_ids)
    # The same document as the CLI's `genloop lineage --json`, down only from a content item.
    down_only = client.get(f"/api/v1/lineage-document/{seeded.content_ids[0]}", params={"direction": "down"})
    assert (
        down_only.json()["up"] is None and down_only.json()["down"]["content"]["id"] == seeded.content_ids[0]
    )
    assert (
        client.get("/api/v1/lineage-document/digits-v1", params={"direction": "sideways"}).status_code == 422
    )
    assert client.get("/api/v1/lineage-document/nothing-here").status_code == 404


def test_openapi_has_stable_operation_ids(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operations = [op for methods in schema["paths"].values() for op in methods.values()]
    operation_ids = [op["operationId"] for op in operations]
    assert len(operation_ids) == len(set(operation_ids))  # unique: client generators rely on it
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", op_id) for op_id in operation_ids), operation_ids
    # The first published operations keep their ids (clients generated from them keep working).
    assert {
        "health",
        "list_publications",
        "get_content",
        "get_content_file",
        "create_feedback",
        "get_like_rate",
        "get_lineage",
        "get_lineage_document",
    } <= set(operation_ids)
    outside_api = [path for path in schema["paths"] if not path.startswith("/api/v1/")]
    public = {"/healthz", "/metrics", "/login", "/logout", "/published/{publication_id}"}
    assert all(path in public or path.startswith("/feeds/") for path in outside_api), outside_api


def test_security_headers(client: TestClient) -> None:
    response = client.get("/api/v1/publications")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def test_app_holds_no_per_worker_state(seeded: SeededCatalog) -> None:
    """Two app instances (two workers) on one catalog see each other's votes."""
    with TestClient(create_app(seeded.workspace)) as one, TestClient(create_app(seeded.workspace)) as two:
        assert vote(one, seeded.publication_ids[0]).status_code == 201
        items = two.get("/api/v1/publications").json()["items"]
    assert {i["publication_id"]: i["likes"] for i in items}[seeded.publication_ids[0]] == 1


def test_malformed_viewer_cookie_is_replaced(client: TestClient, seeded: SeededCatalog) -> None:
    client.cookies.set(VIEWER_COOKIE, "not a valid id; injected=1")
    response = vote(client, seeded.publication_ids[0])
    assert response.status_code == 201
    new_id = response.cookies[VIEWER_COOKIE]
    assert new_id != "not a valid id; injected=1"
    with seeded.catalog.session() as session:
        assert session.scalars(select(FeedbackEvent.viewer_id)).one() == new_id


def test_unpublished_items_exist_only_for_reviewers(client: TestClient, seeded: SeededCatalog) -> None:
    # An item that was generated but never published (in review, say): anonymous viewers get 404
    # for its JSON, its file and its page, exactly as for an id that does not exist.
    from tests.server.conftest import digit_png

    with seeded.catalog.session() as session:
        session.add(
            ContentItem(
                id="u" * 32,
                model_version_id="digits-v1",
                modality="image",
                path=str(seeded.workspace.path("content", "uu", "u" * 32 + ".png")),
                condition={"label": "3"},
                seed=1,
                params={},
                labels={},
                status="review",
            )
        )
    seeded.workspace.path("content", "uu", "u" * 32 + ".png").write_bytes(digit_png(3))
    for url in (f"/api/v1/content/{'u' * 32}", f"/api/v1/content/{'u' * 32}/file", f"/content/{'u' * 32}"):
        assert client.get(url).status_code == 404, url
    reviewer = create_api_key(seeded.catalog, name="rev", role="reviewer").secret
    viewer = create_api_key(seeded.catalog, name="view", role="viewer").secret
    assert client.get(f"/api/v1/content/{'u' * 32}/file", headers={"X-API-Key": viewer}).status_code == 404
    seen = client.get(f"/api/v1/content/{'u' * 32}/file", headers={"X-API-Key": reviewer})
    assert seen.status_code == 200 and seen.content == digit_png(3)
    # Published items stay public.
    assert client.get(f"/api/v1/content/{seeded.content_ids[0]}/file").status_code == 200


def test_text_utf8_cannot_encode_is_a_422_not_a_500(client: TestClient, seeded: SeededCatalog) -> None:
    # A lone surrogate (\ud800) is no valid UTF-8. The gallery's route parses with pydantic-core,
    # which refuses it as JSON; routes parsed by FastAPI (json.loads) accept it and must not
    # crash echoing it back in the 422.
    body = '{"publication_id": "' + seeded.publication_ids[0] + '", "kind": "comment", "text": "\\ud800"}'
    response = client.post("/api/v1/feedback", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "Invalid JSON" in response.text, response.text
    key = create_api_key(seeded.catalog, name="surrogates", role="editor")
    event = '{"publication_id": "x", "kind": "like", "viewer_id": "v", "extra\\ud800": 1}'
    unknown_field = '{"events": [' + event + "]}"
    response = client.post(
        "/api/v1/feedback/batch",
        content=unknown_field,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key.secret}"},
    )
    assert response.status_code == 422 and "\\ud800" in response.text, response.text
