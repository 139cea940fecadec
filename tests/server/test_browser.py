"""The console in a real browser: Debian chromium, driven by Playwright, against a real uvicorn server.

One browser for the file; each test starts its own server on its own seeded catalog and
looks at its pages from fresh browser contexts: an anonymous viewer (the gallery) and a
logged-in editor (the console; the session cookie is the one `POST /login` sets). Every
page visited leaves a screenshot in test-artifacts/ and in the test's tmp dir.

Needs /usr/bin/chromium (`apt-get install -y chromium fonts-wqy-microhei`). Without it
the test is skipped, except under CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from genloop.catalog.models import ContentItem, FeedbackEvent, Job, RunMetric
from genloop.server.auth import SESSION_COOKIE, create_api_key, make_session
from genloop.server.deps import VIEWER_COOKIE
from genloop.workspace import Workspace
from support.live_server import serve_in_thread

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page
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


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    """One headless chromium for every test of the file (starting it is the slow part)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def watch(page: Page, base_url: str, problems: list[str]) -> Page:
    """Collect console errors, page errors and any request to another host into `problems`."""
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((base_url, "data:"))
            else problems.append(f"request to another host: {request.url}")
        ),
    )
    return page


def new_context(browser: Browser) -> BrowserContext:
    return browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)


@pytest.fixture
def live_server(seeded: SeededCatalog) -> Iterator[str]:
    """A real uvicorn server on a free localhost port, in a thread; yields its base URL."""
    with serve_in_thread(seeded.workspace) as base_url:
        yield base_url


def test_like_in_the_gallery(
    live_server: str, seeded: SeededCatalog, browser: Browser, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    problems: list[str] = []
    context = new_context(browser)
    try:
        page = watch(context.new_page(), live_server, problems)
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
        context.close()

    assert problems == []
    with seeded.catalog.session() as session:
        events = session.scalars(select(FeedbackEvent)).all()
    assert [(e.publication_id, e.kind, e.viewer_id) for e in events] == [
        (publication_id, "like", viewer_cookie["value"])
    ]


POEM = "床前明月光，疑是地上霜。"
CORRECTED = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"


def _seed_console(seeded: SeededCatalog) -> str:
    """A flagged Chinese text item awaiting review, loss curves, a finished job; returns the item id."""
    content_id = "t" + "1" * 31
    path = seeded.workspace.path("content", content_id[:2], f"{content_id}.txt")
    path.write_text(POEM, encoding="utf-8")
    with seeded.catalog.session() as session:
        session.add(
            ContentItem(
                id=content_id,
                model_version_id="digits-v2",
                modality="text",
                path=str(path),
                condition={"prompt": "月光"},
                seed=1,
                params={},
                labels={},
                status="review",
                verdicts=[{"check": "keywords", "passed": False, "reason": "含有敏感词"}],
            )
        )
        for step in range(20):
            session.add(RunMetric(run_id="run-0002", step=step, epoch=0, name="loss", value=3.0 / (step + 1)))
        session.add(
            Job(
                id="job-browser",
                kind="generate",
                status="done",
                params={"model": "digits-v2"},
                progress=1.0,
                result={"content_ids": list(seeded.content_ids[-2:])},
            )
        )
    return content_id


def test_review_publish_like_edit_and_analytics(
    live_server: str, seeded: SeededCatalog, browser: Browser, artifacts_dir: Path, tmp_path: Path
) -> None:
    """review → approve → publish → like and edit in place (as a viewer) → analytics shows it."""
    from playwright.sync_api import expect

    content_id = _seed_console(seeded)
    key = create_api_key(seeded.catalog, name="编辑 ana", role="editor")
    problems: list[str] = []
    shots: list[Path] = []

    def shot(page: Page, name: str) -> None:
        page.mouse.move(0, 0)
        for folder in (tmp_path, artifacts_dir):
            page.screenshot(path=str(folder / f"console-{name}.png"), full_page=True)
        shots.append(tmp_path / f"console-{name}.png")

    editor_context = new_context(browser)
    viewer_context = new_context(browser)
    try:
        editor_context.add_cookies(
            [{"name": SESSION_COOKIE, "value": make_session(seeded.workspace, key.id), "url": live_server}]
        )
        editor = watch(editor_context.new_page(), live_server, problems)

        editor.goto(f"{live_server}/console/review")
        card = editor.locator(f'[data-review-item="{content_id}"]')
        expect(card).to_contain_text(POEM)
        expect(card).to_contain_text("含有敏感词")
        shot(editor, "review")
        card.locator(f'[data-approve="{content_id}"]').click()
        expect(editor.locator(".alert-ok")).to_contain_text("approved")
        editor.locator(f'[data-publish="{content_id}"]').click()
        expect(editor.locator(".alert-ok")).to_contain_text("published")

        viewer = watch(viewer_context.new_page(), live_server, problems)
        viewer.goto(f"{live_server}/gallery?modality=text")
        text_card = viewer.locator(".card").filter(has_text=POEM)
        expect(text_card).to_have_count(1)
        text_card.locator('[data-vote="like"]').click()
        expect(text_card.locator('[data-count="like"]')).to_have_text("1")
        text_card.locator('[data-rating="4"]').click()
        expect(text_card.locator('[data-rating="4"]')).to_have_class("star on")
        text_card.locator("[data-edit]").click()
        text_card.locator("textarea").fill(CORRECTED)
        text_card.locator("[data-save-edit]").click()
        expect(text_card.locator("[data-text]")).to_have_text(CORRECTED)
        expect(text_card.locator(".text-card")).to_have_class("text-card edited")
        shot(viewer, "gallery-text")

        editor.goto(f"{live_server}/console/analytics")
        row = editor.locator('[data-analytics="model_version"] tr[data-group="digits-v2"]')
        expect(row.locator("[data-like-rate]")).to_have_text("100.0%")
        expect(row.locator("[data-interval]")).to_have_text("21–100%")  # Wilson 95 % of 1 / 1
        expect(editor.locator('[data-analytics="condition"] tr[data-group="月光"]')).to_have_count(1)
        shot(editor, "analytics")

        for name, path in [
            ("dashboard", "/console"),
            ("datasets", "/console/datasets"),
            ("dataset", "/console/datasets/ds-annot-0002"),
            ("runs", "/console/runs"),
            ("run", "/console/runs/run-0002"),
            ("models", "/console/models"),
            ("generate", "/console/generate"),
            ("job", "/console/jobs/job-browser"),
            ("annotate", "/console/annotate"),
        ]:
            editor.goto(f"{live_server}{path}")
            expect(editor.locator("main h1, main h2").first).to_be_visible()
            shot(editor, name)
        editor.goto(f"{live_server}/console/runs/run-0002")
        expect(editor.locator('polyline[data-series="loss"]')).to_have_count(1)
    finally:
        editor_context.close()
        viewer_context.close()

    assert problems == []
    assert all(path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in shots)
    with seeded.catalog.session() as session:
        events = session.scalars(select(FeedbackEvent).order_by(FeedbackEvent.id)).all()
        item = session.get(ContentItem, content_id)
        assert item is not None and item.status == "published"
    assert [(e.kind, e.value, e.text) for e in events] == [
        ("like", None, None),
        ("rating", 4.0, None),
        ("edit", None, CORRECTED),
    ]
