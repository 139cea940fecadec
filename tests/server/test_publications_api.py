"""Publishing over HTTP (editor only, idempotent, bad input refused with nothing stored), the
webhook delivery queue, and the public JSON Feed / RSS of a feed channel."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from genloop.catalog.models import ContentItem, Publication, WebhookDelivery
from genloop.generate.review import reject
from genloop.server.app import create_app
from genloop.server.auth import create_api_key
from server.conftest import SeededCatalog

CHANNELS = """
[channels.gallery]

[channels.news]
kind = "feed"
propagator = "news-desk"

[channels.cms]
kind = "webhook"
url = "http://127.0.0.1:9/hook"
secret_env = "CMS_HOOK_SECRET"
"""
TRICKY_TITLE = '新闻 <script>alert("x")</script> & more'


@pytest.fixture
def api(seeded: SeededCatalog) -> Iterator[TestClient]:
    with open(seeded.workspace.config_path, "a", encoding="utf-8") as handle:
        handle.write(CHANNELS)
    with TestClient(create_app(seeded.workspace)) as test_client:
        yield test_client


def _auth(seeded: SeededCatalog, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(seeded.catalog, name=role, role=role).secret}"}


def _count(seeded: SeededCatalog, table: type) -> int:
    with seeded.catalog.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_publishing_needs_an_editor_and_is_idempotent(api: TestClient, seeded: SeededCatalog) -> None:
    body = {"content_item_id": seeded.content_ids[0], "channel": "news", "arm": "B"}
    assert api.post("/api/v1/publications", json=body).status_code == 401
    assert api.post("/api/v1/publications", json=body, headers=_auth(seeded, "viewer")).status_code == 403
    editor = _auth(seeded, "editor")
    created = api.post("/api/v1/publications", json=body, headers=editor)
    assert created.status_code == 201, created.text
    publication = created.json()
    assert publication["created"] is True and publication["arm"] == "B" and publication["channel"] == "news"
    assert publication["path"] == f".genloop/published/{publication['id']}.png"
    copy = api.get(f"/published/{publication['id']}")
    assert copy.status_code == 200 and copy.headers["content-type"] == "image/png"
    assert copy.content == (seeded.workspace.root / publication["path"]).read_bytes()

    again = api.post("/api/v1/publications", json=body, headers=editor)
    assert again.status_code == 200 and again.json() == {**publication, "created": False}
    with seeded.catalog.session() as session:
        item = session.get(ContentItem, seeded.content_ids[0])
        assert item is not None and item.status == "published"
        # the seeded file has no AIGC label: copied unchanged, and the publication says so
        assert item.labels["published"][publication["id"]]["notes"][0].startswith(
            "implicit: the file carries no"
        )


BAD_PUBLICATIONS: list[tuple[dict[str, object], int]] = [
    ({"content_item_id": "c00" + "0" * 30, "channel": "../x"}, 422),
    ({"content_item_id": "../../etc/passwd", "channel": "news"}, 422),
    ({"content_item_id": "c00" + "0" * 30, "channel": "news", "extra": 1}, 422),
    ({"content_item_id": "c00" + "0" * 30, "channel": "news", "arm": "A/../B"}, 422),
    ({"content_item_id": "' OR 1=1 --", "channel": "news"}, 422),
    ({"content_item_id": 7, "channel": "news"}, 422),
    ({"content_item_id": "nosuchitem", "channel": "news"}, 404),
    ({"content_item_id": "c00" + "0" * 30, "channel": "nowhere"}, 400),
]


def test_bad_publications_are_refused_and_nothing_is_stored(api: TestClient, seeded: SeededCatalog) -> None:
    before, editor = _count(seeded, Publication), _auth(seeded, "editor")
    for body, status in BAD_PUBLICATIONS:
        response = api.post("/api/v1/publications", json=body, headers=editor)
        assert response.status_code == status, (body, response.text)
        if status != 422:
            assert response.json()["detail"] and response.json()["hint"]
    malformed = api.post(
        "/api/v1/publications",
        content=b'{"content_item_id": ',
        headers={**editor, "content-type": "application/json"},
    )
    assert malformed.status_code == 422
    assert _count(seeded, Publication) == before
    assert not (seeded.workspace.state_dir / "published").exists()


def test_rejected_items_are_not_published(api: TestClient, seeded: SeededCatalog) -> None:
    reject(seeded.catalog, [seeded.content_ids[1]], reason="off brand")
    body = {"content_item_id": seeded.content_ids[1], "channel": "news"}
    response = api.post("/api/v1/publications", json=body, headers=_auth(seeded, "editor"))
    assert response.status_code == 400 and "rejected" in response.json()["detail"]
    with seeded.catalog.session() as session:
        assert session.scalars(select(Publication).where(Publication.channel == "news")).all() == []


def test_webhook_deliveries_are_listed_and_replayed(api: TestClient, seeded: SeededCatalog) -> None:
    editor, viewer = _auth(seeded, "editor"), _auth(seeded, "viewer")
    body = {"content_item_id": seeded.content_ids[2], "channel": "cms"}
    publication = api.post("/api/v1/publications", json=body, headers=editor).json()
    assert api.get("/api/v1/webhook-deliveries").status_code == 401
    page = api.get("/api/v1/webhook-deliveries", params={"status": "pending"}, headers=viewer).json()
    assert page["total"] == 1
    [delivery] = page["items"]
    assert delivery["publication_id"] == publication["id"] and delivery["attempts"] == 0

    with seeded.catalog.session() as session:
        session.execute(update(WebhookDelivery).values(status="dead", attempts=6, last_error="HTTP 500"))
    replay_url = f"/api/v1/webhook-deliveries/{delivery['id']}/replay"
    assert api.post(replay_url, headers=viewer).status_code == 403
    replayed = api.post(replay_url, headers=editor)
    assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
    assert replayed.json()["attempts"] == 0
    missing = api.post("/api/v1/webhook-deliveries/nosuch/replay", headers=editor)
    assert missing.status_code == 404 and missing.json()["hint"]
    bad = api.get("/api/v1/webhook-deliveries", params={"status": "x' OR 1=1"}, headers=viewer)
    assert bad.status_code == 422


def test_feeds_list_newest_first_with_escaped_titles(api: TestClient, seeded: SeededCatalog) -> None:
    with seeded.catalog.session() as session:
        session.execute(
            update(ContentItem)
            .where(ContentItem.id == seeded.content_ids[3])
            .values(condition={"prompt": TRICKY_TITLE})
        )
    editor = _auth(seeded, "editor")
    published = []
    for content_id in seeded.content_ids[:4]:
        body = {"content_item_id": content_id, "channel": "news"}
        published.append(api.post("/api/v1/publications", json=body, headers=editor).json()["id"])

    feed = api.get("/feeds/news.json")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/feed+json")
    document = feed.json()
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    items = document["items"]
    assert [item["id"] for item in items] == published[::-1]  # newest first
    newest = items[0]
    assert newest["title"].startswith(TRICKY_TITLE) and "新闻" in feed.text  # UTF-8, not \\u escapes
    assert newest["url"].endswith(f"/content/{seeded.content_ids[3]}")
    assert newest["_genloop"]["content_id"] == seeded.content_ids[3]
    [attachment] = newest["attachments"]
    assert attachment["url"].endswith(f"/published/{published[3]}") and attachment["mime_type"] == "image/png"
    assert api.get(attachment["url"]).status_code == 200
    assert [i["id"] for i in api.get("/feeds/news.json", params={"limit": 2}).json()["items"]] == published[
        :1:-1
    ]

    rss = api.get("/feeds/news.rss")
    assert rss.status_code == 200 and rss.headers["content-type"].startswith("application/rss+xml")
    assert "<script>" not in rss.text and "&lt;script&gt;" in rss.text
    channel = ET.fromstring(rss.content).find("channel")
    assert channel is not None
    rss_items = channel.findall("item")
    assert [node.findtext("guid") for node in rss_items] == published[::-1]
    assert (rss_items[0].findtext("title") or "").startswith(TRICKY_TITLE)
    enclosure = rss_items[0].find("enclosure")
    assert (
        enclosure is not None and enclosure.get("type") == "image/png" and int(enclosure.get("length", 0)) > 0
    )

    assert api.get("/feeds/gallery.json").status_code == 404  # not a feed channel
    assert api.get("/feeds/nowhere.rss").status_code == 404
    assert api.get("/feeds/bad name.json").status_code == 422
    assert api.get("/feeds/news.json", params={"limit": 0}).status_code == 422
    assert api.get("/published/..%2F..%2Fgenloop.toml").status_code == 404
    assert api.get("/published/pub-00").status_code == 404  # seeded without a published copy
