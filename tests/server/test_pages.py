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


def _add_item(seeded: SeededCatalog, content_id: str, modality: str, files: dict[str, bytes]) -> str:
    """A published item of `modality` whose files (by extension) lie in .genloop/content/."""
    from genloop.catalog.models import ContentItem, Publication

    first = next(iter(files))
    for extension, data in files.items():
        seeded.workspace.path("content", content_id[:2], f"{content_id}{extension}").write_bytes(data)
    with seeded.catalog.session() as session:
        session.add(
            ContentItem(
                id=content_id,
                model_version_id="digits-v2",
                modality=modality,
                path=str(seeded.workspace.path("content", content_id[:2], f"{content_id}{first}")),
                condition={"prompt": "春天"},
                seed=0,
                params={},
                labels={},
                status="published",
            )
        )
        session.flush()
        session.add(Publication(id=f"pub-{content_id[:6]}", content_item_id=content_id, channel="gallery"))
    return f"pub-{content_id[:6]}"


def test_gallery_per_modality(client: TestClient, seeded: SeededCatalog) -> None:
    poem = "春眠不觉晓，处处闻啼鸟。<script>"
    text_pub = _add_item(seeded, "a" * 32, "text", {".txt": poem.encode("utf-8")})
    music_pub = _add_item(
        seeded, "b" * 32, "music", {".mid": b"MThd\x00\x00\x00\x06", ".wav": b"RIFF0000WAVE"}
    )

    text_page = html(client, "/gallery?modality=text")
    assert "春眠不觉晓，处处闻啼鸟。&lt;script&gt;" in text_page  # escaped, Chinese intact
    assert f'data-edit-publication="{text_pub}"' in text_page
    assert 'data-publication="pub-00"' not in text_page  # images are not text

    music_page = html(client, "/gallery?modality=music")
    assert f'data-publication="{music_pub}"' in music_page
    assert f'<audio controls preload="none" src="/media/{"b" * 32}.wav">' in music_page
    assert f'href="/media/{"b" * 32}.mid"' in music_page
    wav = client.get(f"/media/{'b' * 32}.wav")
    assert (wav.status_code, wav.headers["content-type"], wav.content) == (200, "audio/wav", b"RIFF0000WAVE")
    assert client.get(f"/media/{'b' * 32}.mid").headers["content-type"] == "audio/midi"

    everything = html(client, "/")
    assert poem[:5] in everything and f"/media/{'b' * 32}.wav" in everything
    assert client.get("/gallery?modality=video").status_code == 422


def test_media_route_serves_only_catalogued_files(client: TestClient, seeded: SeededCatalog) -> None:
    _add_item(seeded, "c" * 32, "text", {".txt": "只有文字".encode()})
    assert client.get(f"/media/{'c' * 32}.wav").status_code == 404  # no rendered audio next to it
    assert client.get(f"/media/{'c' * 32}.txt").status_code == 422  # only wav and mid
    assert client.get("/media/..%2F..%2Fgenloop.toml.wav").status_code == 404
    assert client.get(f"/media/{seeded.content_ids[0]}.mid").status_code == 404


def test_content_page_of_a_text_item(client: TestClient, seeded: SeededCatalog) -> None:
    _add_item(seeded, "d" * 32, "text", {".txt": "夜来风雨声".encode()})
    page = html(client, f"/content/{'d' * 32}")
    assert "夜来风雨声" in page and "Lineage" in page
