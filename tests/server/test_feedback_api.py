"""Feedback in over real HTTP: every kind, de-duplication, the per-viewer rate limit, batches, CSV import.

On SQLite and PostgreSQL (the `seeded` catalog of tests/server/conftest.py).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from genloop.catalog.models import FeedbackEvent
from genloop.feedback.importer import MAX_IMPORT_BYTES
from genloop.feedback.ratelimit import RATE_LIMIT_ENV
from genloop.server.auth import create_api_key

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog


def send(client: TestClient, **body: object) -> httpx.Response:
    return client.post("/api/v1/feedback", json={"idempotency_key": str(uuid.uuid4()), **body})


def stored(seeded: SeededCatalog) -> int:
    with seeded.catalog.session() as session:
        return session.scalar(select(func.count()).select_from(FeedbackEvent)) or 0


def auth(seeded: SeededCatalog, role: str) -> dict[str, str]:
    key = create_api_key(seeded.catalog, name=f"test-{role}", role=role)
    return {"Authorization": f"Bearer {key.secret}"}


def test_every_kind_over_http(client: TestClient, seeded: SeededCatalog) -> None:
    pub = seeded.publication_ids[0]
    bodies = [
        {"kind": "impression"},
        {"kind": "click"},
        {"kind": "like"},
        {"kind": "rating", "value": 5},
        {"kind": "edit", "text": "改好的文字"},
        {"kind": "comment", "text": "好看 👍"},
        {"kind": "flag", "text": "misleading"},
        {"kind": "flag"},
    ]
    for body in bodies:
        response = send(client, publication_id=pub, **body)
        assert response.status_code == 201, response.text
        event = response.json()
        assert (event["kind"], event["value"], event["text"]) == (
            body["kind"],
            body.get("value"),
            body.get("text"),
        )
    assert stored(seeded) == len(bodies)


INVALID = [
    ({"kind": "rating", "value": 6}, "whole number from 1 to 5"),
    ({"kind": "rating"}, "whole number from 1 to 5"),
    ({"kind": "edit"}, "needs `text`"),
    ({"kind": "like", "value": 1}, "takes no value"),
    ({"kind": "comment", "text": "x" * 9000}, "8192"),
    ({"kind": "comment", "text": "坏" * 3000}, "limit is 8192"),
    ({"kind": "like", "idempotency_key": "dedup:0123456789"}, "genloop's own"),
    ({"kind": "like", "idempotency_key": "import:0123456789"}, "genloop's own"),
]


def test_invalid_events_are_422_and_store_nothing(client: TestClient, seeded: SeededCatalog) -> None:
    for body, message in INVALID:
        response = client.post("/api/v1/feedback", json={"publication_id": seeded.publication_ids[0], **body})
        assert response.status_code == 422, response.text
        assert message in response.text, (body, response.text)
    assert stored(seeded) == 0


def test_repeats_are_replayed_with_fresh_keys(client: TestClient, seeded: SeededCatalog) -> None:
    """The gallery sends a new key per click; the server still folds the repeats (dedup.py)."""
    pub = seeded.publication_ids[1]
    first = send(client, publication_id=pub, kind="like")
    again = send(client, publication_id=pub, kind="like")
    assert again.json()["replayed"] is True and again.json()["id"] == first.json()["id"]
    assert (again.json()["likes_change"], again.json()["dislikes_change"]) == (0, 0)
    views = [send(client, publication_id=pub, kind="impression").json() for _ in range(3)]
    assert [view["replayed"] for view in views] == [False, True, True]
    assert stored(seeded) == 2


def test_count_changes_add_up_to_the_listed_counts(client: TestClient, seeded: SeededCatalog) -> None:
    """The gallery adds each answer's changes to the counts it shows: they must reach the real counts."""
    pub = seeded.publication_ids[2]
    other_viewer = TestClient(client.app)
    votes = [
        (client, "like", (1, 0)),
        (client, "like", (0, 0)),  # a repeat: replayed
        (client, "dislike", (-1, 1)),  # changed their mind: the like no longer counts
        (other_viewer, "dislike", (0, 1)),
        (client, "like", (1, -1)),
        (client, "rating", (0, 0)),
    ]
    shown = [0, 0]
    for viewer, kind, expected in votes:
        body = {"kind": kind, **({"value": 4} if kind == "rating" else {})}
        event = send(viewer, publication_id=pub, **body).json()
        change = (event["likes_change"], event["dislikes_change"])
        assert change == expected, (kind, event)
        shown = [shown[0] + change[0], shown[1] + change[1]]
    listed = {item["publication_id"]: item for item in client.get("/api/v1/publications").json()["items"]}
    assert shown == [listed[pub]["likes"], listed[pub]["dislikes"]] == [1, 1]


def test_rate_limit_is_429_with_retry_after(
    client: TestClient, seeded: SeededCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RATE_LIMIT_ENV, "3/60")
    for pub in seeded.publication_ids[:3]:
        assert send(client, publication_id=pub, kind="like").status_code == 201
    refused = send(client, publication_id=seeded.publication_ids[3], kind="like")
    assert refused.status_code == 429
    assert "at most 3 events per 60 s" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert stored(seeded) == 3
    with TestClient(client.app) as other_viewer:  # no cookie: another viewer, its own budget
        assert send(other_viewer, publication_id=seeded.publication_ids[3], kind="like").status_code == 201
    monkeypatch.setenv(RATE_LIMIT_ENV, "off")
    assert send(client, publication_id=seeded.publication_ids[4], kind="like").status_code == 201


def test_batch_needs_an_editor_and_reports_each_event(client: TestClient, seeded: SeededCatalog) -> None:
    pub = seeded.publication_ids[0]
    key = str(uuid.uuid4())
    events = [
        {"publication_id": pub, "kind": "like", "viewer_id": "crm:42", "idempotency_key": key},
        {"publication_id": pub, "kind": "like", "viewer_id": "crm:42", "idempotency_key": key},
        {"publication_id": "pub-missing", "kind": "like", "viewer_id": "crm:42"},
        {"publication_id": pub, "kind": "rating", "value": 9, "viewer_id": "crm:42"},
        {"publication_id": pub, "kind": "like", "viewer_id": "not allowed!"},
        {"publication_id": pub, "kind": "love", "viewer_id": "crm:43"},
        {
            "publication_id": pub,
            "kind": "edit",
            "text": "better",
            "viewer_id": "crm:43",
            "meta": {"ticket": 7},
        },
    ]
    body = {"events": events}
    assert client.post("/api/v1/feedback/batch", json=body).status_code == 401
    assert (
        client.post("/api/v1/feedback/batch", json=body, headers=auth(seeded, "reviewer")).status_code == 403
    )
    assert stored(seeded) == 0
    response = client.post("/api/v1/feedback/batch", json=body, headers=auth(seeded, "editor"))
    assert response.status_code == 200, response.text
    result = response.json()
    assert [r["status"] for r in result["results"]] == [
        "stored", "replayed", "error", "error", "error", "error", "stored",
    ]  # fmt: skip
    assert (result["stored"], result["replayed"], result["errors"]) == (2, 1, 4)
    reasons = [r["detail"] for r in result["results"] if r["status"] == "error"]
    assert "pub-missing" in reasons[0] and "1 to 5" in reasons[1]
    assert "viewer id" in reasons[2] and "love" in reasons[3]
    assert stored(seeded) == 2


def test_batch_of_the_wrong_shape_or_size_stores_nothing(client: TestClient, seeded: SeededCatalog) -> None:
    editor = auth(seeded, "editor")
    one = {"publication_id": seeded.publication_ids[0], "kind": "like", "viewer_id": "crm:1"}
    for body in (
        {"events": [one, {"publication_id": "pub-00", "kind": "like"}]},  # second lacks viewer_id
        {"events": [one] * 501},
        {"events": []},
        {"events": [one], "extra": 1},
    ):
        assert client.post("/api/v1/feedback/batch", json=body, headers=editor).status_code == 422
    assert stored(seeded) == 0


CSV = "Creative_ID,Impr,Clicks\npub-00,6,2\npub-unknown,1,0\n"
MAPPING = "creative=Creative_ID,impressions=Impr,clicks=Clicks"


def upload(
    client: TestClient, headers: dict[str, str], data: bytes, kind: str = "text/csv"
) -> httpx.Response:
    return client.post(
        "/api/v1/feedback/import",
        files={"file": ("ads.csv", data, kind)},
        data={"mapping": MAPPING},
        headers=headers,
    )


def test_csv_import_over_http(client: TestClient, seeded: SeededCatalog) -> None:
    editor = auth(seeded, "editor")
    assert upload(client, {}, CSV.encode()).status_code == 401
    assert upload(client, auth(seeded, "viewer"), CSV.encode()).status_code == 403
    first = upload(client, editor, CSV.encode())
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["stored"], report["by_kind"]) == (8, {"impression": 6, "click": 2})
    assert report["unknown"] == [
        {
            "row": 3,
            "creative": "pub-unknown",
            "reason": "neither a publication id nor a published content item id",
        }
    ]
    again = upload(client, editor, CSV.encode()).json()
    assert (again["stored"], again["already_stored"]) == (0, 8)
    chinese = "创意,点击\npub-01,3\n".encode("gbk")
    response = client.post(
        "/api/v1/feedback/import",
        files={"file": ("报表.csv", chinese, "text/csv")},
        data={"mapping": "creative=创意,clicks=点击"},
        headers=editor,
    )
    assert response.status_code == 200, response.text
    assert stored(seeded) == 11


def test_bad_uploads_are_clear_4xx_and_store_nothing(client: TestClient, seeded: SeededCatalog) -> None:
    editor = auth(seeded, "editor")
    malformed = upload(client, editor, b"Creative_ID,Impr,Clicks\npub-00,6,2\npub-01,six,1\n")
    assert malformed.status_code == 400
    assert "row 3, column 'Impr'" in malformed.json()["detail"]
    semicolons = upload(client, editor, b"Creative_ID;Impr;Clicks\npub-00;6;2\n")
    assert semicolons.status_code == 400 and "--delimiter" in semicolons.json()["hint"]
    assert upload(client, editor, b"\x89PNG\r\n\x1a\n", kind="image/png").status_code == 415
    assert upload(client, editor, b"PK\x03\x04\x00\x00").status_code == 400  # an .xlsx named .csv
    huge = b"Creative_ID,Impr,Clicks\n" + b"pub-00,1,0\n" * (MAX_IMPORT_BYTES // 11 + 10)
    assert upload(client, editor, huge).status_code == 413
    no_file = client.post("/api/v1/feedback/import", data={"mapping": MAPPING}, headers=editor)
    assert no_file.status_code == 422
    assert stored(seeded) == 0
