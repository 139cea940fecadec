"""Support pre-replies over real HTTP (TestClient) on both catalogs: submit, queue, accept / edit / reject.

The app is built from the tiny English + Chinese ticket file (BM25 only, every ticket indexed);
keys are real API keys in the catalog. Checked as a user would notice: the masked query and
fields in the responses, the feedback events in the catalog, PII nowhere in any response or
page, 4xx for bad payloads with nothing stored, 404 for unknown tickets, 409 for a second
decision, and support pre-replies absent from the public gallery.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from apps.support_data import CN_ID, EMAIL, PHONE_CN, PHONE_US, write_tickets
from genloop.apps.support.app import build_support
from genloop.catalog.models import ContentItem, FeedbackEvent, ModelVersion, Publication, SupportTicket
from genloop.server.auth import SESSION_COOKIE, create_api_key, make_session
from genloop.workspace import Workspace
from support.api_service import ApiService, running_service

PII = (PHONE_CN, PHONE_US, EMAIL, CN_ID, "415-555", "12345678", "19491231")
EN_QUERY = f"I forgot my password and cannot log in, call me at {PHONE_US} or mail {EMAIL}"
ZH_QUERY = f"我的快递还没到，订单号E2024050112，手机{PHONE_CN}，身份证号{CN_ID}"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


class Service(ApiService):
    def submit(self, query: str) -> dict[str, object]:
        response = self.client.post(
            "/api/v1/support/tickets", json={"query": query}, headers=self.auth("editor")
        )
        assert response.status_code == 201, response.text
        body: dict[str, object] = response.json()
        return body


@pytest.fixture
def service(workspace: Workspace, tmp_path: Path) -> Iterator[Service]:
    build_support(workspace, tickets=write_tickets(tmp_path / "t.csv"), embeddings="none", heldout_percent=0)
    with running_service(workspace, ("viewer", "reviewer", "editor"), key_prefix="support") as service:
        yield Service(service.client, service.catalog, service.workspace, service.keys)


def test_submit_queue_and_decide_through_the_api(service: Service) -> None:
    english, chinese = service.submit(EN_QUERY), service.submit(ZH_QUERY)
    assert (english["language"], english["intent"], english["status"]) == ("en", "account", "queued")
    assert (chinese["language"], chinese["intent"]) == ("zh", "shipping")
    assert "[PHONE]" in str(english["query"]) and "[EMAIL]" in str(english["query"])
    assert {(s["type"], s["value"]) for s in chinese["slots"]} >= {  # type: ignore[union-attr]
        ("ORDER", "E2024050112"),
        ("PHONE", "[PHONE]"),
        ("CN_ID", "[CN_ID]"),
    }
    assert "Forgot password" in str(english["pre_reply"]) and "查询物流" in str(chinese["pre_reply"])
    assert chinese["sources"][0]["question"] == "我的快递还没到"  # type: ignore[index]
    assert english["model_version_id"] == "support-v1"
    assert (english["generator"], english["fallback_reason"]) == ("template", None)  # the default composer
    third = service.submit("The printer does not print anything")

    queue = service.client.get("/api/v1/support/tickets", headers=service.auth("reviewer"))
    assert queue.status_code == 200
    assert [t["id"] for t in queue.json()["items"]] == [english["id"], chinese["id"], third["id"]]
    one = service.client.get(f"/api/v1/support/tickets/{chinese['id']}", headers=service.auth("reviewer"))
    assert one.status_code == 200 and one.json()["pre_reply"] == chinese["pre_reply"]
    for value in PII:  # nothing the API says holds the customer's PII
        assert value not in queue.text and value not in one.text

    base = "/api/v1/support/tickets"
    reviewer = service.auth("reviewer")
    accepted = service.client.post(f"{base}/{english['id']}/accept", json={}, headers=reviewer)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    corrected = "请在我的订单里点击物流详情，或拨打快递公司电话查询，一般3天内送达。"
    edited = service.client.post(
        f"{base}/{chinese['id']}/edit", json={"reply": corrected, "intent": "shipping"}, headers=reviewer
    )
    assert edited.status_code == 200 and edited.json()["final_reply"] == corrected
    rejected = service.client.post(
        f"{base}/{third['id']}/reject", json={"reason": "wrong printer"}, headers=reviewer
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"

    with service.catalog.session() as session:
        events = session.execute(
            select(FeedbackEvent.kind, FeedbackEvent.text, Publication.channel, ContentItem.model_version_id)
            .join(Publication, FeedbackEvent.publication_id == Publication.id)
            .join(ContentItem, Publication.content_item_id == ContentItem.id)
            .order_by(FeedbackEvent.id)
        ).all()
        stored = {t.id: t for t in session.scalars(select(SupportTicket))}
    assert [tuple(e) for e in events] == [
        ("like", None, "support", "support-v1"),
        ("edit", corrected, "support", "support-v1"),
        ("dislike", None, "support", "support-v1"),
    ]
    assert (
        stored[str(chinese["id"])].final_intent == "shipping"
        and stored[str(third["id"])].note == "wrong printer"
    )
    assert all(value not in repr(vars(t)) for t in stored.values() for value in PII)

    # deciding twice: 409, and no second event
    again = service.client.post(f"{base}/{english['id']}/reject", json={}, headers=reviewer)
    assert again.status_code == 409 and "already accepted" in again.json()["detail"]
    assert service.count(FeedbackEvent) == 3
    # unknown tickets: 404 for every decision
    for action, body in (("accept", {}), ("edit", {"reply": "x"}), ("reject", {})):
        missing = service.client.post(f"{base}/{'0' * 32}/{action}", json=body, headers=reviewer)
        assert missing.status_code == 404 and "no support ticket" in missing.json()["detail"]
    assert service.client.get(f"{base}/not-a-ticket", headers=reviewer).status_code == 404


def test_bad_payloads_and_roles_store_nothing(service: Service) -> None:
    url = "/api/v1/support/tickets"
    editor = service.auth("editor")
    cases = [
        ({"query": ""}, 422),
        ({"query": "x" * 5000}, 422),
        ({"query": "hello", "extra": 1}, 422),
        ({"query": "   \t  "}, 400),  # valid JSON, but nothing to answer
        ({"query": 42}, 422),
    ]
    for body, expected in cases:
        response = service.client.post(url, json=body, headers=editor)
        assert response.status_code == expected, (body, response.text)
    blank = service.client.post(url, json={"query": "  "}, headers=editor).json()
    assert blank["detail"] == "the query is empty" and blank["hint"]
    assert service.client.post(url, json={"query": "hi"}, headers=service.auth("reviewer")).status_code == 403
    assert service.client.post(url, json={"query": "hi"}).status_code == 401
    assert service.client.get(url, headers=service.auth("viewer")).status_code == 403
    assert service.count(SupportTicket) == service.count(ContentItem) == service.count(Publication) == 0

    ticket = service.submit("How do I delete my account?")
    reviewer = service.auth("reviewer")
    for action, body in (
        ("edit", {}),
        ("edit", {"reply": ""}),
        ("accept", {"intent": "x" * 200}),
        ("reject", {"reason": "r", "note": "unknown field"}),
    ):
        response = service.client.post(f"{url}/{ticket['id']}/{action}", json=body, headers=reviewer)
        assert response.status_code == 422, (action, body, response.text)
    assert (
        service.client.post(f"{url}/{ticket['id']}/edit", json={"reply": "  "}, headers=reviewer).status_code
        == 400
    )
    assert service.count(FeedbackEvent) == 0
    assert service.client.get(f"{url}/{ticket['id']}", headers=reviewer).json()["status"] == "queued"


def test_support_pre_replies_stay_out_of_the_public_gallery(service: Service) -> None:
    ticket = service.submit(EN_QUERY)
    public = service.client.get("/api/v1/publications")
    assert public.status_code == 200 and public.json()["items"] == []
    assert service.client.get(f"/api/v1/content/{ticket['content_item_id']}").status_code == 404
    assert service.client.get(f"/api/v1/content/{ticket['content_item_id']}/file").status_code == 404
    gallery = service.client.get("/", headers={"Accept": "text/html"})
    assert gallery.status_code == 200 and str(ticket["content_item_id"]) not in gallery.text
    with service.catalog.session() as session:
        version = session.get(ModelVersion, "support-v1")
        assert version is not None and version.family == "support"


def test_console_page_shows_the_queue_and_decides_with_csrf(service: Service) -> None:
    ticket = service.submit(ZH_QUERY)
    key = create_api_key(service.catalog, name="agent-ann", role="reviewer")
    client = service.client
    client.cookies.set(SESSION_COOKIE, make_session(service.workspace, key.id))
    page = client.get("/console/support")
    assert page.status_code == 200
    assert 'data-language="zh"' in page.text and 'data-intent="shipping"' in page.text
    assert 'data-slot="ORDER"' in page.text and "E2024050112" in page.text and "[PHONE]" in page.text
    assert all(value not in page.text for value in PII)
    token_match = CSRF_INPUT.search(page.text)
    assert token_match is not None
    action = f"/console/support/{ticket['id']}/accept"
    assert (
        client.post(action, data={"intent": "shipping"}, follow_redirects=False).status_code == 403
    )  # no CSRF
    done = client.post(action, data={"csrf_token": token_match[1]}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/console/support?done=accepted"
    twice = client.post(action, data={"csrf_token": token_match[1]})
    assert twice.status_code == 409 and "already accepted" in twice.text
    client.cookies.clear()
    assert client.get("/console/support", follow_redirects=False).status_code == 303  # to /login
