"""The console in a real browser: Debian chromium, driven by Playwright, against a real uvicorn server.

Needs /usr/bin/chromium (`apt-get install -y chromium fonts-wqy-microhei`). Without it
the test is skipped, except under CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from sqlalchemy import select

from genloop.catalog.models import FeedbackEvent
from genloop.server.app import create_app
from genloop.server.deps import VIEWER_COOKIE
from genloop.workspace import Workspace

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    if CHROMIUM.is_file():
        return
    message = f"{CHROMIUM} is missing: run `sudo apt-get install -y chromium fonts-wqy-microhei`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def workspace(sqlite_workspace: Workspace) -> Workspace:
    """The browser test is about the page, not the catalog backend: SQLite only."""
    return sqlite_workspace


@pytest.fixture
def live_server(seeded: SeededCatalog) -> Iterator[str]:
    """A real uvicorn server on a free localhost port, in a thread; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = uvicorn.Config(create_app(seeded.workspace), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_like_in_the_gallery(live_server: str, seeded: SeededCatalog, artifacts_dir: Path) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page = context.new_page()
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "request",
                lambda request: (
                    None
                    if request.url.startswith((live_server, "data:"))
                    else problems.append(f"request to another host: {request.url}")
                ),
            )
            page.goto(f"{live_server}/")
            expect(page.locator(".card")).to_have_count(len(seeded.publication_ids))
            newest = page.locator(".card").first
            publication_id = seeded.publication_ids[-1]
            expect(newest.locator("[data-publication]")).to_have_attribute("data-publication", publication_id)
            like_count = newest.locator('[data-count="like"]')
            expect(like_count).to_have_text("0")

            newest.locator('[data-vote="like"]').click()
            expect(like_count).to_have_text("1")  # updated in place, no reload
            expect(newest.locator('[data-vote="like"]')).to_have_attribute("aria-pressed", "true")

            # Images finished loading before the screenshot (they are the point of the page).
            page.wait_for_function(
                "Array.from(document.images).every(img => img.complete && img.naturalWidth > 0)"
            )
            page.mouse.move(0, 0)  # no hover effect in the picture
            page.wait_for_timeout(300)  # ... once the card's 150 ms transition has run
            page.screenshot(path=str(artifacts_dir / "gallery.png"), full_page=True)
            viewer_cookie = next(c for c in context.cookies() if c["name"] == VIEWER_COOKIE)
            assert viewer_cookie["httpOnly"] is True
            assert viewer_cookie["sameSite"] == "Strict"

            page.goto(f"{live_server}/models")
            expect(page.locator(".rate-value")).to_have_text(["100.0%"])
            page.screenshot(path=str(artifacts_dir / "models.png"), full_page=True)
            page.goto(f"{live_server}/content/{seeded.content_ids[-1]}")
            expect(page.locator(".timeline")).to_contain_text("CC-BY-SA-3.0")
            page.screenshot(path=str(artifacts_dir / "content.png"), full_page=True)
        finally:
            browser.close()

    assert problems == []
    with seeded.catalog.session() as session:
        events = session.scalars(select(FeedbackEvent)).all()
    assert [(e.publication_id, e.kind, e.viewer_id) for e in events] == [
        (publication_id, "like", viewer_cookie["value"])
    ]
