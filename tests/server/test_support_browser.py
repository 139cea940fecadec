"""The support agent page in a real browser: Debian chromium via Playwright, a real uvicorn server.

A reviewer's console session works the queue of three pre-replies (English, Chinese with PII,
English): accept one, edit one in the textarea, reject one with a reason. Afterwards the
catalog holds the three tickets' statuses and one like, one edit (with the typed text) and one
dislike; the page never showed the customer's PII. Screenshots go to test-artifacts/.

Needs /usr/bin/chromium, like tests/server/test_browser.py (skipped without it, failed under CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from apps.support_data import CN_ID, PHONE_CN, write_tickets
from genloop.apps.support.app import build_support
from genloop.apps.support.queue import Ticket, submit
from genloop.catalog import open_catalog
from genloop.catalog.models import FeedbackEvent, SupportTicket
from genloop.server.auth import SESSION_COOKIE, create_api_key, make_session
from genloop.workspace import Workspace
from server.test_browser import browser_fixture, new_context, watch  # noqa: F401 (the `browser` fixture)
from support.live_server import serve_in_thread

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

QUERIES = (
    "How do I delete my account?",
    f"我的快递还没到，手机{PHONE_CN}，身份证号{CN_ID}",
    "The printer does not print anything",
)
EDITED = "请在我的订单里点击物流详情查询包裹位置，如超过3天未到请回复本消息。"


@pytest.fixture
def queued(sqlite_workspace: Workspace, tmp_path: Path) -> list[Ticket]:
    workspace = sqlite_workspace
    app = build_support(
        workspace, tickets=write_tickets(tmp_path / "t.csv"), embeddings="none", heldout_percent=0
    )
    catalog = open_catalog(workspace.database_url)
    return [submit(workspace, catalog, app, query, actor="api:intake") for query in QUERIES]


@pytest.fixture
def live_server(sqlite_workspace: Workspace, queued: list[Ticket]) -> Iterator[str]:
    with serve_in_thread(sqlite_workspace) as base_url:
        yield base_url


def test_agent_accepts_edits_and_rejects_in_the_browser(
    live_server: str,
    sqlite_workspace: Workspace,
    queued: list[Ticket],
    browser: Browser,
    artifacts_dir: Path,
) -> None:
    from playwright.sync_api import expect

    catalog = open_catalog(sqlite_workspace.database_url)
    key = create_api_key(catalog, name="客服 ann", role="reviewer")
    problems: list[str] = []
    context = new_context(browser)
    accept, edit, reject = (ticket.id for ticket in queued)
    try:
        context.add_cookies(
            [{"name": SESSION_COOKIE, "value": make_session(sqlite_workspace, key.id), "url": live_server}]
        )
        page = watch(context.new_page(), live_server, problems)
        page.goto(f"{live_server}/console/support")
        expect(page.locator("[data-ticket]")).to_have_count(3)
        chinese = page.locator(f'[data-ticket="{edit}"]')
        expect(chinese.locator("[data-language]")).to_have_attribute("data-language", "zh")
        expect(chinese.locator("[data-intent]")).to_have_attribute("data-intent", "shipping")
        expect(chinese.locator('[data-slot="PHONE"]')).to_contain_text("[PHONE]")
        expect(chinese.locator("[data-pre-reply]")).to_contain_text("查询物流")
        chinese.locator("[data-sources] summary").click()
        expect(chinese.locator("[data-sources] li").first).to_contain_text("我的快递还没到")
        html = page.content()
        assert PHONE_CN not in html and CN_ID not in html
        page.mouse.move(0, 0)
        page.screenshot(path=str(artifacts_dir / "support-queue.png"), full_page=True)

        page.locator(f'[data-accept="{accept}"]').click()
        expect(page.locator(".alert-ok")).to_contain_text("accepted")
        page.locator(f'[data-edit-text="{edit}"]').fill(EDITED)
        page.locator(f'[data-edit="{edit}"]').click()
        expect(page.locator(".alert-ok")).to_contain_text("edited")
        page.locator(f'[data-ticket="{reject}"] input[name="reason"]').fill("wrong product")
        page.locator(f'[data-reject="{reject}"]').click()
        expect(page.locator(".alert-ok")).to_contain_text("rejected")
        expect(page.locator("[data-ticket]")).to_have_count(0)
        expect(page.locator("[data-decided]")).to_have_count(3)
        expect(page.locator(f'[data-decided="{edit}"]')).to_contain_text(EDITED)
        page.mouse.move(0, 0)
        page.screenshot(path=str(artifacts_dir / "support-decided.png"), full_page=True)
    finally:
        context.close()

    assert problems == []
    with catalog.session() as session:
        statuses = {t.id: (t.status, t.decided_by, t.note) for t in session.scalars(select(SupportTicket))}
        events = session.scalars(select(FeedbackEvent).order_by(FeedbackEvent.id)).all()
    assert statuses == {
        accept: ("accepted", "console:客服 ann", None),
        edit: ("edited", "console:客服 ann", None),
        reject: ("rejected", "console:客服 ann", "wrong product"),
    }
    assert [(e.kind, e.text) for e in events] == [("like", None), ("edit", EDITED), ("dislike", None)]
    assert (artifacts_dir / "support-decided.png").stat().st_size > 1000
