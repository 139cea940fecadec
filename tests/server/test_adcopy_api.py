"""The ad-copy studio over real HTTP (TestClient): check, generate, list, publish as A/B arms, console page.

A tiny real GPT is trained for 30 steps on a slice of the built-in past copy (the fixture of
tests/apps/test_adcopy_cli.py); keys are real API keys in a real SQLite catalog. Checked as a
user would notice: every returned and listed line meets its product's constraints (the
studio's own checker), impossible constraints and bad payloads are refused with nothing
stored, publications carry their arms and the feedback on them reaches the ranker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from apps.test_adcopy_cli import IMPOSSIBLE, PRODUCTS, trained  # noqa: F401 - the module fixture
from genloop.apps.adcopy.constraints import violations
from genloop.apps.adcopy.feedback import rows_from_catalog
from genloop.apps.adcopy.products import product_from_row
from genloop.catalog.models import ContentItem, FeedbackEvent, ModelVersion, Publication
from genloop.cli.main import app
from genloop.server.auth import SESSION_COOKIE, create_api_key, make_session
from support.api_service import ApiService, running_service

CSRF_INPUT = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
URL = "/api/v1/adcopy"


def as_json(row: dict[str, str]) -> dict[str, Any]:
    """A product table row (CSV strings) as the API's JSON product."""
    lists = ("features", "must_include", "banned")
    out: dict[str, Any] = {
        k: [w.strip() for w in re.split(r"[;|]", v) if w.strip()] if k in lists else v for k, v in row.items()
    }
    out["max_length"] = int(row["max_length"])
    return out


Service = ApiService


@pytest.fixture
def service(trained: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:  # noqa: F811
    workspace, _root = trained
    monkeypatch.setenv("GENLOOP_NUM_THREADS", "1")
    with running_service(workspace, ("viewer", "editor"), key_prefix=f"ad-{id(monkeypatch)}") as service:
        yield service


def test_generate_list_publish_with_arms_and_feedback_reaches_the_ranker(service: Service) -> None:
    products = [as_json(PRODUCTS[0]), as_json(PRODUCTS[2])]  # English shoe, Chinese phone
    response = service.client.post(
        f"{URL}/generate", json={"products": products, "n": 3, "seed": 7}, headers=service.auth("editor")
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert [p["product_id"] for p in body["products"]] == ["shoe", "phone"]
    checker = {row["id"]: product_from_row(row, "test") for row in (PRODUCTS[0], PRODUCTS[2])}
    for entry in body["products"]:
        assert entry["model_version"] == "adcopy-v1" and entry["sampled"] >= 9
        assert [line["rank"] for line in entry["lines"]] == list(range(1, len(entry["lines"]) + 1))
        for line in entry["lines"]:
            assert violations(line["text"], checker[entry["product_id"]]) == [], line
    assert body["lines"] >= 2

    listed = service.client.get(f"{URL}/products", headers=service.auth("viewer")).json()["items"]
    assert {"shoe", "phone"} <= {item["product_id"] for item in listed}
    phone = service.client.get(f"{URL}/products/phone/candidates", headers=service.auth("viewer")).json()
    [generated] = [p for p in body["products"] if p["product_id"] == "phone"]
    newest = phone["items"][: len(generated["lines"])]
    assert [c["text"] for c in newest] == [line["text"] for line in generated["lines"]]  # by rank
    assert all(c["satisfied"] and c["violations"] == [] for c in phone["items"])
    assert service.client.get(f"{URL}/products/nothing/candidates").status_code == 401

    shoe = service.client.get(f"{URL}/products/shoe/candidates", headers=service.auth("viewer")).json()
    choices = [c for c in shoe["items"] + phone["items"] if not c["publications"]][:4]
    assert len(choices) >= 2
    items = [{"content_item_id": c["content_item_id"], "arm": "AB"[i % 2]} for i, c in enumerate(choices)]
    published = service.client.post(
        f"{URL}/publications", json={"channel": "gallery", "items": items}, headers=service.auth("editor")
    )
    assert published.status_code == 201, published.text
    arms = {row["content_item_id"]: row["arm"] for row in published.json()["items"]}
    assert arms == {item["content_item_id"]: item["arm"] for item in items}

    # viewers react through the public feedback API; the reactions show per arm and feed the ranker
    for index, row in enumerate(published.json()["items"]):
        kind = "like" if row["arm"] == "A" else "dislike"
        sent = service.client.post(
            "/api/v1/feedback", json={"publication_id": row["publication_id"], "kind": kind},
            headers={"X-Viewer-Id": f"viewer-{index}"},
        )  # fmt: skip
        assert sent.status_code in (200, 201), sent.text
    again = service.client.get(f"{URL}/products/shoe/candidates", headers=service.auth("viewer")).json()
    again_phone = service.client.get(
        f"{URL}/products/phone/candidates", headers=service.auth("viewer")
    ).json()
    reacted = {
        c["content_item_id"]: c["publications"][0]
        for c in again["items"] + again_phone["items"]
        if c["publications"]
    }
    for content_id, arm in arms.items():
        publication = reacted[content_id]
        assert publication["arm"] == arm and publication["channel"] == "gallery"
        assert publication["reactions"] == ({"like": 1} if arm == "A" else {"dislike": 1})
    rows = {row.text: row.liked for row in rows_from_catalog(service.catalog)}
    texts = {c["content_item_id"]: c["text"] for c in choices}
    assert all(rows[texts[cid]] == (arm == "A") for cid, arm in arms.items())

    # the generator learns from the same feedback: sft on the liked lines → a challenger version
    root = str(service.workspace.root)
    fitted = CliRunner().invoke(app, ["adcopy", "fit-ranker", "-w", root])
    assert fitted.exit_code == 0 and f"ranker fitted on {len(rows)} rows" in fitted.output
    improved = CliRunner().invoke(
        app, ["adcopy", "improve", "--recipe", "sft", "--steps", "3", "--no-evaluate", "--json", "-w", root]
    )
    assert improved.exit_code == 0, improved.output
    outcome = json.loads(improved.stdout)
    assert (outcome["recipe"], outcome["champion"]) == ("sft", "adcopy-v1")
    assert outcome["feedback_events"] == len(arms)
    with service.catalog.session() as session:
        challenger = session.get(ModelVersion, outcome["challenger"])
        assert challenger is not None and challenger.parent_id == "adcopy-v1"
    again = service.client.post(
        f"{URL}/generate", json={"products": products[:1], "n": 2, "model": "adcopy@challenger"},
        headers=service.auth("editor"),
    )  # fmt: skip
    assert again.status_code == 201, again.text
    [entry] = again.json()["products"]
    assert entry["model_version"] == outcome["challenger"]
    assert all(violations(line["text"], checker["shoe"]) == [] for line in entry["lines"])


def test_check_and_refusals_store_nothing(service: Service) -> None:
    client, editor, viewer = service.client, service.auth("editor"), service.auth("viewer")
    table = "id,name,language,max_length,must_include,banned\n" + "\n".join(
        f"{r['id']},{r['name']},{r['language']},{r['max_length']},{r['must_include']},{r['banned']}"
        for r in (PRODUCTS[0], *IMPOSSIBLE)
    )
    checked = client.post(f"{URL}/check", json={"table": table}, headers=viewer)
    assert checked.status_code == 200, checked.text
    assert checked.json()["ok"] is False and set(checked.json()["impossible"]) == {"bad-en", "bad-zh"}
    ok = client.post(f"{URL}/check", json={"products": [as_json(PRODUCTS[1])]}, headers=viewer).json()
    assert ok == {**ok, "ok": True, "impossible": {}} and ok["products"][0]["unit"] == "words"

    before = (service.count(ContentItem), service.count(Publication), service.count(FeedbackEvent))
    impossible = client.post(f"{URL}/generate", json={"table": table, "n": 2}, headers=editor)
    assert impossible.status_code == 400
    assert "2 product(s) have constraints no line can meet" in impossible.json()["detail"]
    assert "'bad-en': required 'free shipping' contains the banned 'free'" in impossible.json()["detail"]
    bad_language = client.post(
        f"{URL}/generate", json={"products": [{**as_json(PRODUCTS[0]), "language": "fr"}]}, headers=editor
    )
    assert bad_language.status_code == 400 and "products:1: field 'language' is 'fr'" in bad_language.text
    too_many = client.post(f"{URL}/generate", json={"table": table, "n": 20}, headers=editor)
    assert too_many.status_code == 400 and "genloop adcopy generate" in too_many.json()["hint"]
    for payload in (
        {},
        {"products": [as_json(PRODUCTS[0])], "table": table},  # both sources
        {"products": []},
        {"products": [{**as_json(PRODUCTS[0]), "max_length": 0}]},
        {"products": [{**as_json(PRODUCTS[0]), "colour": "red"}]},  # a misspelt field is not dropped
        {"products": [as_json(PRODUCTS[0])], "n": 0},
    ):
        response = client.post(f"{URL}/generate", json=payload, headers=editor)
        assert response.status_code == 422, (payload, response.text)
    assert client.post(f"{URL}/generate", json={"table": table}, headers=viewer).status_code == 403
    assert client.post(f"{URL}/check", json={"table": table}).status_code == 401

    for items, code in (
        ([{"content_item_id": "nope", "arm": "A"}], 404),
        ([{"content_item_id": "x" * 65, "arm": "A"}], 422),
        ([{"content_item_id": "abc", "arm": "A B"}], 422),
        ([], 422),
    ):
        response = client.post(f"{URL}/publications", json={"items": items}, headers=editor)
        assert response.status_code == code, (items, response.text)
    after = (service.count(ContentItem), service.count(Publication), service.count(FeedbackEvent))
    assert after == before


def test_console_page_lists_candidates_and_publishes_with_csrf(service: Service) -> None:
    made = service.client.post(
        f"{URL}/generate", json={"products": [as_json(PRODUCTS[3])], "n": 2, "seed": 3},
        headers=service.auth("editor"),
    )  # fmt: skip
    assert made.status_code == 201, made.text
    lines = made.json()["products"][0]["lines"]
    assert lines
    key = create_api_key(service.catalog, name="ad-console-editor", role="editor")
    client = service.client
    client.cookies.set(SESSION_COOKIE, make_session(service.workspace, key.id))
    page = client.get("/console/adcopy")
    assert page.status_code == 200
    assert 'data-product="hotel"' in page.text and lines[0]["text"] in page.text
    assert f'data-candidate="{lines[0]["content_item_id"]}" data-satisfied="yes"' in page.text
    token = CSRF_INPUT.search(page.text)
    assert token is not None
    field = f"arm_{lines[0]['content_item_id']}"
    refused = client.post("/console/adcopy/publish", data={field: "B"}, follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token
    unknown = client.post("/console/adcopy/publish", data={"csrf_token": token[1], "arm_nope": "A"})
    assert unknown.status_code == 404 and "no ad-copy candidate nope" in unknown.text
    assert service.count(Publication) == 0 or lines[0]["content_item_id"] not in _published(service)
    done = client.post(
        "/console/adcopy/publish", data={"csrf_token": token[1], field: "B", "channel": "gallery"},
        follow_redirects=False,
    )  # fmt: skip
    assert done.status_code == 303 and "published%201%20on%20gallery" in done.headers["location"]
    assert _published(service)[lines[0]["content_item_id"]] == "B"
    shown = client.get("/console/adcopy")
    assert 'data-arm="B"' in shown.text
    client.cookies.clear()
    assert client.get("/console/adcopy", follow_redirects=False).status_code == 303  # to /login


def _published(service: Service) -> dict[str, str | None]:
    with service.catalog.session() as session:
        return dict(session.execute(select(Publication.content_item_id, Publication.arm)).all())
