"""The server-rendered console pages on a real catalog (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fastapi.testclient import TestClient

from genloop.server.deps import VIEWER_COOKIE

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog

EXTERNAL_URL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def html(client: TestClient, path: str, status: int = 200) -> str:
    response = client.get(path, headers={"accept": "text/html"})
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert '<meta charset="utf-8">' in response.text
    assert not EXTERNAL_URL.search(response.text), "pages must not load anything from another host"
    return response.text


def test_gallery_lists_items_newest_first(client: TestClient, seeded: SeededCatalog) -> None:
    page = html(client, "/")
    assert "AI生成" in page
    assert "AI-generated" in page
    assert "digits v2" in page
    positions = [page.index(f'data-publication="{pub}"') for pub in reversed(seeded.publication_ids)]
    assert positions == sorted(positions)
    for content_id in seeded.content_ids:
        assert f"/api/v1/content/{content_id}/file" in page
    assert VIEWER_COOKIE in client.cookies  # a first visit gets its pseudonymous id


def test_gallery_empty_state(sqlite_workspace) -> None:  # type: ignore[no-untyped-def]
    from genloop.server.app import create_app

    with TestClient(create_app(sqlite_workspace)) as client:
        page = html(client, "/")
    assert "Nothing published yet" in page


def test_models_page_shows_like_rate(client: TestClient, seeded: SeededCatalog) -> None:
    v1 = [pub for pub in seeded.publication_ids if seeded.model_of[pub] == "digits-v1"]
    for publication_id, kind in [(v1[0], "like"), (v1[1], "like"), (v1[2], "dislike")]:
        client.post("/api/v1/feedback", json={"publication_id": publication_id, "kind": kind})
    page = html(client, "/models")
    assert "66.7%" in page  # 2 likes / 3 votes
    assert 'style="width: 66.7%"' in page
    assert "no votes yet" in page  # digits-v2


def test_content_page_shows_lineage(client: TestClient, seeded: SeededCatalog) -> None:
    page = html(client, f"/content/{seeded.content_ids[-1]}")
    assert "Lineage" in page
    assert "Fine-tuned from" in page  # digits-v2 → digits-v1
    assert "run-0002" in page
    assert "CC-BY-SA-3.0" in page
    assert "mnist-5k" in page
    assert f'data-publication="{seeded.publication_ids[-1]}"' in page


def test_unknown_pages_are_html_404(client: TestClient) -> None:
    assert "not in the catalog" in html(client, "/content/no-such-item", status=404)
    assert "Not found" in html(client, "/no/such/page", status=404)


def test_docs_page_is_local(client: TestClient) -> None:
    page = html(client, "/docs")
    for operation_id in ("list_publications", "create_feedback", "get_like_rate", "get_lineage"):
        assert f'id="{operation_id}"' in page
    assert "/openapi.json" in page
    assert "cdn" not in page.lower()


def test_static_assets_are_served_locally(client: TestClient) -> None:
    for asset in ("app.css", "app.js"):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200
        assert "http://" not in response.text
        assert "https://" not in response.text
