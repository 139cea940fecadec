"""The read side over real HTTP: analytics per model version / day / arm, exports; hostile filters.

On SQLite and PostgreSQL (the `seeded` catalog of tests/server/conftest.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from genloop.catalog.models import FeedbackEvent, Publication
from genloop.feedback.events import record_feedback
from genloop.server.auth import create_api_key

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog

DAY = datetime(2025, 11, 5, 10, 0, tzinfo=UTC)
HOSTILE = ["' OR '1'='1", "x'; DROP TABLE feedback_events; --", "%", "1) OR (1=1", "../../etc/passwd", "\\'"]


def plant(seeded: SeededCatalog) -> dict[str, str]:
    """Arm A = v1's items: 8 likes, 2 dislikes; arm B = v2's: 2 likes, 2 dislikes, 4 impressions, 1 click."""
    with seeded.catalog.session() as session:
        for publication_id, model in seeded.model_of.items():
            publication = session.get(Publication, publication_id)
            assert publication is not None
            publication.arm = "A" if model == "digits-v1" else "B"
    a = [p for p, m in seeded.model_of.items() if m == "digits-v1"]
    b = [p for p, m in seeded.model_of.items() if m == "digits-v2"]
    stream = [(a[0], "like")] * 5 + [(a[1], "like")] * 3 + [(a[2], "dislike")] * 2
    stream += [(b[0], "like")] * 2 + [(b[1], "dislike")] * 2 + [(b[2], "impression")] * 4 + [(b[2], "click")]
    for number, (publication_id, kind) in enumerate(stream):
        record_feedback(
            seeded.catalog, publication_id=publication_id, kind=kind, viewer_id=f"v{number}", at=DAY
        )
    key = create_api_key(seeded.catalog, name="dashboard", role="viewer")
    return {"Authorization": f"Bearer {key.secret}"}


def event_count(seeded: SeededCatalog) -> int:
    with seeded.catalog.session() as session:
        return session.scalar(select(func.count()).select_from(FeedbackEvent)) or 0


def test_stats_per_arm_and_per_model_version_over_time(client: TestClient, seeded: SeededCatalog) -> None:
    viewer = plant(seeded)
    assert client.get("/api/v1/analytics/feedback").status_code == 401
    response = client.get("/api/v1/analytics/feedback", params={"by": "arm"}, headers=viewer)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["by"] == ["arm"]
    arms = {group["group"]["arm"]: group for group in page["groups"]}
    assert (arms["A"]["likes"], arms["A"]["dislikes"]) == (8, 2)
    assert arms["A"]["like_rate"] == pytest.approx(0.8)
    assert arms["A"]["like_rate_interval"] == pytest.approx([0.490, 0.943], abs=5e-4)
    assert (arms["B"]["impressions"], arms["B"]["clicks"], arms["B"]["ctr"]) == (4, 1, 0.25)
    over_time = client.get(
        "/api/v1/analytics/feedback", params=[("by", "model_version"), ("by", "day")], headers=viewer
    ).json()
    assert [(g["group"]["model_version"], g["group"]["day"], g["votes"]) for g in over_time["groups"]] == [
        ("digits-v1", "2025-11-05", 10),
        ("digits-v2", "2025-11-05", 4),
    ]
    by_condition = client.get("/api/v1/analytics/feedback", params={"by": "condition"}, headers=viewer).json()
    assert {g["group"]["condition"] for g in by_condition["groups"]} == {"0", "1", "2", "3", "4", "5"}
    assert (
        client.get("/api/v1/analytics/feedback", params={"by": "viewer_id"}, headers=viewer).status_code
        == 422
    )
    rates = client.get("/api/v1/analytics/like-rate", headers=viewer).json()
    assert {r["model_version_id"]: r["votes"] for r in rates} == {"digits-v1": 10, "digits-v2": 4}


def test_hostile_filters_are_4xx_or_empty_and_store_nothing(
    client: TestClient, seeded: SeededCatalog
) -> None:
    viewer = plant(seeded)
    before = event_count(seeded)
    for hostile in HOSTILE:
        for name in ("model_version_id", "model_name", "channel", "arm", "condition"):
            response = client.get("/api/v1/analytics/feedback", params={name: hostile}, headers=viewer)
            assert response.status_code == 200 and response.json()["groups"] == [], (name, hostile)
            export = client.get("/api/v1/exports/feedback.jsonl", params={name: hostile}, headers=viewer)
            assert (export.status_code in (200, 422) and export.content == b"") or export.status_code == 422
        for name in ("by", "since", "until"):
            assert (
                client.get("/api/v1/analytics/feedback", params={name: hostile}, headers=viewer).status_code
                == 422
            )
        assert (
            client.get("/api/v1/exports/feedback.jsonl", params={"kind": hostile}, headers=viewer).status_code
            == 422
        )
        pairs = client.get(
            "/api/v1/exports/preference-pairs.jsonl", params={"model_name": hostile}, headers=viewer
        )
        assert pairs.status_code == 200 and pairs.content == b""
    assert event_count(seeded) == before
    assert client.get("/api/v1/analytics/feedback", headers=viewer).json()[
        "groups"
    ]  # the table is still there


def test_exports_stream_jsonl(client: TestClient, seeded: SeededCatalog) -> None:
    viewer = plant(seeded)
    assert client.get("/api/v1/exports/feedback.jsonl").status_code == 401
    response = client.get("/api/v1/exports/feedback.jsonl", headers=viewer)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert len(rows) == event_count(seeded) == 19
    assert {row["arm"] for row in rows} == {"A", "B"}
    assert all(row["viewer"] != f"v{n}" for n, row in enumerate(rows))
    likes = client.get("/api/v1/exports/feedback.jsonl", params={"kind": "like", "arm": "B"}, headers=viewer)
    assert len(likes.text.splitlines()) == 2

    pairs = client.get("/api/v1/exports/preference-pairs.jsonl", headers=viewer)
    assert pairs.status_code == 200
    # Every seeded item has its own class label, so no two items share a condition: no vote pairs.
    assert pairs.text == ""
