"""The console behind the login, through real HTTP (TestClient) on a real SQLite catalog.

Logins are real console sessions: an API key in the catalog and the signed session cookie
`POST /login` would set (made with `auth.make_session`), so CSRF is checked as in a browser.
These tests are about pages, roles and forms; the ones whose subject is a catalog query
run on SQLite and PostgreSQL in test_console_catalog.py (which shares the helpers here).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from genloop.catalog.models import (
    ContentItem,
    DatasetVersion,
    Evaluation,
    Job,
    ModelAlias,
    RunMetric,
)
from genloop.server.auth import SESSION_COOKIE, create_api_key, make_session
from genloop.workspace import Workspace

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog

EXTERNAL_URL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
CSRF_INPUT = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
POEM = "床前明月光，疑是地上霜。"
PAGES = {
    "/console": "viewer",
    "/console/datasets": "viewer",
    "/console/datasets/ds-collect-0001": "viewer",
    "/console/runs": "viewer",
    "/console/runs/run-0001": "viewer",
    "/console/models": "viewer",
    "/console/analytics": "viewer",
    "/console/generate": "editor",
    "/console/review": "reviewer",
    "/console/annotate": "reviewer",
}


def log_in(client: TestClient, seeded: SeededCatalog, role: str, name: str | None = None) -> None:
    key = create_api_key(seeded.catalog, name=name or f"{role} 张三", role=role)
    client.cookies.set(SESSION_COOKIE, make_session(seeded.workspace, key.id))


def page(client: TestClient, path: str, status: int = 200) -> str:
    response = client.get(path, headers={"accept": "text/html"}, follow_redirects=False)
    assert response.status_code == status, response.text[:800]
    assert not EXTERNAL_URL.search(response.text), "pages must not load anything from another host"
    return response.text


def add_review_item(seeded: SeededCatalog, content_id: str = "t" + "1" * 31, text: str = POEM) -> str:
    """A text item a safety check flagged: status review, with its failing verdict."""
    path = seeded.workspace.path("content", content_id[:2], f"{content_id}.txt")
    path.write_text(text, encoding="utf-8")
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
                verdicts=[{"check": "keywords", "passed": False, "reason": "含有敏感词 (flagged word)"}],
            )
        )
    return content_id


def status_of(seeded: SeededCatalog, content_id: str) -> str:
    with seeded.catalog.session() as session:
        item = session.get(ContentItem, content_id)
        assert item is not None
        return item.status


@pytest.fixture
def workspace(sqlite_workspace: Workspace) -> Workspace:
    """Pages, roles and forms do not depend on the catalog backend: SQLite only."""
    return sqlite_workspace


def test_anonymous_visitors_are_sent_to_login(client: TestClient) -> None:
    for path in PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/login?next={path}"
    assert client.get("/console/runs?x=1", follow_redirects=False).headers["location"] == (
        "/login?next=/console/runs%3Fx%3D1"
    )


def test_every_page_renders_for_its_role(client: TestClient, seeded: SeededCatalog) -> None:
    log_in(client, seeded, "editor")
    for path in PAGES:
        text = page(client, path)
        assert "editor 张三" in text  # who is logged in, Chinese name intact
        assert 'aria-label="Console"' in text


def test_pages_refuse_a_role_too_weak(client: TestClient, seeded: SeededCatalog) -> None:
    log_in(client, seeded, "viewer")
    for path, role in PAGES.items():
        if role != "viewer":
            assert "needs role" in page(client, path, status=403)


def test_dataset_page_shows_cleaning_report(client: TestClient, seeded: SeededCatalog) -> None:
    report = {"steps": [{"name": "near_dup", "seen": 400, "kept": 380, "dropped": {"near-duplicate": 20}}]}
    with seeded.catalog.session() as session:
        version = session.get(DatasetVersion, "ds-annot-0002")
        assert version is not None
        version.manifest = {
            "labels": {"猫": 200, "狗": 180},
            "splits": {"train": 300, "test": 80},
            "report": report,
        }
    log_in(client, seeded, "viewer")
    text = page(client, "/console/datasets/ds-annot-0002")
    assert '<tr data-step="near_dup">' in text
    assert "near-duplicate (20)" in text
    assert "猫" in text and "CC-BY-SA-3.0" not in text  # the annotate version has no sources of its own
    assert "Not found" in page(client, "/console/datasets/nope", status=404)


def test_run_page_draws_loss_curves_as_inline_svg(client: TestClient, seeded: SeededCatalog) -> None:
    with seeded.catalog.session() as session:
        for step in range(5):
            session.add(
                RunMetric(run_id="run-0001", step=step, epoch=0, name="train/loss", value=2.0 / (step + 1))
            )
            session.add(
                RunMetric(run_id="run-0001", step=step, epoch=0, name="val/loss", value=2.5 / (step + 1))
            )
    log_in(client, seeded, "viewer")
    text = page(client, "/console/runs/run-0001")
    assert text.count("<polyline") == 2
    assert 'data-series="train/loss"' in text and 'data-series="val/loss"' in text
    assert 'data-live="false"' in text  # a completed run does not refresh itself
    fragment = page(client, "/console/runs/run-0001/charts")
    assert fragment.lstrip().startswith('<div class="charts"') and fragment.count("<polyline") == 2


def test_models_page_buttons_by_role(client: TestClient, seeded: SeededCatalog) -> None:
    log_in(client, seeded, "viewer")
    viewer_page = page(client, "/console/models")
    assert 'data-model-version="digits-v2"' in viewer_page
    assert "data-promote" not in viewer_page and "data-rollback" not in viewer_page
    assert "/promote" not in viewer_page  # no form the viewer could post

    client.cookies.clear()
    log_in(client, seeded, "editor")
    editor_page = page(client, "/console/models")
    assert 'data-promote="digits-v2"' in editor_page
    assert CSRF_INPUT.search(editor_page)


def test_promote_refused_by_a_gate_shows_why(client: TestClient, seeded: SeededCatalog) -> None:
    config = seeded.workspace.config_path
    config.write_text(
        config.read_text(encoding="utf-8")
        + '\n[[gates]]\nmetric = "conditional_accuracy"\nrule = "at_least"\nvalue = 0.9\n',
        encoding="utf-8",
    )
    with seeded.catalog.session() as session:
        session.add(
            Evaluation(
                model_version_id="digits-v2",
                dataset_version_id="ds-annot-0002",
                metrics={"conditional_accuracy": 0.5},
            )
        )
    log_in(client, seeded, "editor")
    token = CSRF_INPUT.search(page(client, "/console/models"))
    assert token
    response = client.post(
        "/console/models/digits-v2/promote", data={"csrf_token": token.group(1), "alias": "champion"}
    )
    assert response.status_code == 409
    assert "cannot become champion" in response.text and "conditional_accuracy 0.5" in response.text
    with seeded.catalog.session() as session:
        assert session.get(ModelAlias, ("digits", "champion")) is None


def test_state_changes_need_role_and_csrf(client: TestClient, seeded: SeededCatalog) -> None:
    content_id = add_review_item(seeded)
    approve = f"/console/review/{content_id}/approve"
    assert client.post(approve, data={}).status_code == 401  # anonymous

    log_in(client, seeded, "viewer")
    assert client.post(approve, data={}).status_code == 403  # too weak

    client.cookies.clear()
    log_in(client, seeded, "reviewer")
    assert client.post(approve, data={}).status_code == 403  # no CSRF token
    assert client.post(approve, data={"csrf_token": "0" * 64}).status_code == 403  # a wrong one
    assert status_of(seeded, content_id) == "review"

    token = CSRF_INPUT.search(page(client, "/console/review"))
    assert token
    publish = client.post(f"/console/review/{content_id}/publish", data={"csrf_token": token.group(1)})
    assert publish.status_code == 403  # publishing needs an editor
    response = client.post(approve, data={"csrf_token": token.group(1)}, follow_redirects=False)
    assert response.status_code == 303
    assert status_of(seeded, content_id) == "approved"


def test_review_page_shows_verdicts_and_rejects_with_reason(
    client: TestClient, seeded: SeededCatalog
) -> None:
    content_id = add_review_item(seeded)
    log_in(client, seeded, "reviewer")
    text = page(client, "/console/review")
    assert POEM in text
    assert "含有敏感词 (flagged word)" in text
    assert "prompt: <strong>月光</strong>" in text  # the condition as text, not \u escapes
    assert f'data-approve="{content_id}"' in text
    token = CSRF_INPUT.search(text)
    assert token
    refused = client.post(f"/console/review/{content_id}/reject", data={"csrf_token": token.group(1)})
    assert refused.status_code == 400 and "rejecting needs a reason" in refused.text
    assert status_of(seeded, content_id) == "review"
    done = client.post(
        f"/console/review/{content_id}/reject",
        data={"csrf_token": token.group(1), "reason": "不合适"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert status_of(seeded, content_id) == "rejected"


def test_generate_form_validates_before_queueing(client: TestClient, seeded: SeededCatalog) -> None:
    log_in(client, seeded, "editor")
    text = page(client, "/console/generate")
    token = CSRF_INPUT.search(text)
    assert token and '<option value="digits-v2"' in text
    for bad, message in [({"count": "0"}, "count must be 1"), ({"model": "no-such"}, "no-such")]:
        form = {"csrf_token": token.group(1), "model": "digits-v1", "labels": "3，7", **bad}
        response = client.post("/console/generate", data=form)
        assert response.status_code == 400, response.text[:300]
        assert message in response.text
    with seeded.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_generate_enqueues_a_job(client: TestClient, seeded: SeededCatalog) -> None:
    pytest.importorskip("genloop.jobs.queue", reason="the job queue (genloop.jobs.queue) is not here yet")
    log_in(client, seeded, "editor", name="王五")
    token = CSRF_INPUT.search(page(client, "/console/generate"))
    assert token
    form = {"csrf_token": token.group(1), "model": "digits-v1", "labels": "3，7", "count": "2", "seed": "5"}
    response = client.post("/console/generate", data=form, follow_redirects=False)
    assert response.status_code == 303
    job_id = response.headers["location"].rsplit("/", 1)[-1]
    with seeded.catalog.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.kind, job.created_by, job.params["labels"], job.params["seed"]) == (
            "generate",
            "王五",
            ["3", "7"],
            5,
        )
    assert f'data-job="{job_id}"' in page(client, f"/console/jobs/{job_id}")


def test_job_page_shows_progress_and_results(client: TestClient, seeded: SeededCatalog) -> None:
    with seeded.catalog.session() as session:
        session.add(
            Job(
                id="job-9",
                kind="generate",
                status="done",
                params={"model": "digits-v1"},
                progress=1.0,
                message="2 items",
                result={"content_ids": list(seeded.content_ids[:2])},
                finished_at=datetime.now(UTC),
            )
        )
    log_in(client, seeded, "viewer")
    text = page(client, "/console/jobs/job-9")
    assert 'data-finished="true"' in text and "width: 100%" in text
    for content_id in seeded.content_ids[:2]:
        assert f"/api/v1/content/{content_id}/file" in text
    page(client, "/console/jobs/nope", status=404)


def test_no_console_write_without_role_and_csrf(client: TestClient, seeded: SeededCatalog) -> None:
    """Every console POST route × (anonymous, viewer, reviewer without the token): refused, nothing stored."""
    from fastapi.routing import APIRoute

    from genloop.server.web import console

    content_id = add_review_item(seeded)
    paths = {
        route.path.format(version_id="digits-v2", name="digits", content_id=content_id, task_id=1)
        for route in console.router.routes
        if isinstance(route, APIRoute) and route.path.startswith("/console") and "POST" in route.methods
    }
    assert len(paths) == 7  # promote, rollback, generate, approve, reject, publish, annotate
    form = {"model": "digits-v1", "label": "x", "reason": "不要", "alias": "champion"}
    for who in ("anonymous", "viewer", "reviewer"):
        client.cookies.clear()
        if who != "anonymous":
            log_in(client, seeded, who)
        for path in paths:
            status = client.post(path, data=form, follow_redirects=False).status_code
            assert status == (401 if who == "anonymous" else 403), (who, path, status)
    assert status_of(seeded, content_id) == "review"
    with seeded.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
        assert session.scalar(select(func.count()).select_from(ModelAlias)) == 0
