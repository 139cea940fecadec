"""The domain API (datasets, runs, models, jobs, generations, review, annotations) on real catalogs.

Real app over TestClient on SQLite and PostgreSQL, real API keys, a tiny real model for
generation run by a real worker (`run_once`), and a real uvicorn server for the event
stream of a running job. Bad input gets a clear 4xx and stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from genloop.catalog.models import AnnotationTask, ContentItem, Evaluation, Job, RunMetric
from genloop.jobs import queue
from genloop.jobs.worker import run_once
from genloop.models.versions import alias_history
from genloop.server.app import create_app
from genloop.server.auth import ROLES, create_api_key
from genloop.workspace import Workspace
from support.live_server import serve_in_thread
from support.tiny_generators import register_tiny

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog

INJECTION = "x' OR '1'='1' --"


@pytest.fixture
def keys(seeded: SeededCatalog) -> dict[str, dict[str, str]]:
    """Authorization headers per role."""
    made = {role: create_api_key(seeded.catalog, name=f"ana-{role}", role=role) for role in ROLES}
    return {role: {"Authorization": f"Bearer {key.secret}"} for role, key in made.items()}


def jobs_stored(seeded: SeededCatalog) -> int:
    with seeded.catalog.session() as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


def test_reads_need_a_key_and_show_datasets_and_runs(
    client: TestClient, seeded: SeededCatalog, keys: dict[str, dict[str, str]]
) -> None:
    assert client.get("/api/v1/datasets").status_code == 401
    viewer = keys["viewer"]
    page = client.get("/api/v1/datasets", headers=viewer).json()
    assert {d["id"] for d in page["items"]} == {"ds-collect-0001", "ds-annot-0002"}
    collect = client.get("/api/v1/datasets/ds-collect-0001", headers=viewer).json()
    assert collect["sources"] == [{"source": "mnist-5k", "license": "CC-BY-SA-3.0", "record_count": 400}]
    assert collect["children"] == ["ds-annot-0002"]
    only = client.get("/api/v1/datasets", params={"stage": "annotate"}, headers=viewer).json()
    assert [d["id"] for d in only["items"]] == ["ds-annot-0002"]

    with seeded.catalog.session() as session:
        for step in range(3):
            session.add(RunMetric(run_id="run-0001", step=step, epoch=0, name="loss", value=3.0 - step))
            session.add(RunMetric(run_id="run-0001", step=step, epoch=0, name="kl", value=0.1 * step))
    run = client.get("/api/v1/runs/run-0001", headers=viewer).json()
    assert run["model_versions"] == ["digits-v1"]
    assert run["latest_metrics"] == {"kl": pytest.approx(0.2), "loss": 1.0}
    curve = client.get("/api/v1/runs/run-0001/metrics", params={"name": "loss"}, headers=viewer).json()
    assert [(p["step"], p["value"]) for p in curve["points"]] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert curve["names"] == ["kl", "loss"]
    newer = client.get(
        "/api/v1/runs/run-0001/metrics", params={"name": "loss", "after_step": 1}, headers=viewer
    ).json()
    assert [p["step"] for p in newer["points"]] == [2]


def test_injection_strings_in_ids_and_filters_are_clear_4xx(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    viewer = keys["reviewer"]
    for url, params in [
        (f"/api/v1/datasets/{INJECTION}", {}),
        ("/api/v1/datasets", {"name": INJECTION}),
        (f"/api/v1/runs/{INJECTION}", {}),
        ("/api/v1/runs/run-0001/metrics", {"name": INJECTION}),
        ("/api/v1/runs", {"status": INJECTION}),
        (f"/api/v1/models/{INJECTION}", {}),
        ("/api/v1/models", {"name": INJECTION}),
        (f"/api/v1/jobs/{INJECTION}", {}),
        ("/api/v1/jobs", {"status": INJECTION}),
        ("/api/v1/jobs", {"kind": INJECTION}),
        ("/api/v1/review", {"status": INJECTION}),
        ("/api/v1/annotations/queue", {"dataset_version_id": INJECTION}),
    ]:
        response = client.get(url, params=params, headers=viewer)
        assert 400 <= response.status_code < 500, (url, params, response.status_code, response.text)
        assert response.json()["detail"], url
    refused = client.get("/api/v1/jobs", params={"status": "done' OR 1=1"}, headers=viewer)
    assert refused.status_code == 400
    assert refused.json()["hint"].startswith("statuses:")


def write_gates(workspace: Workspace) -> Workspace:
    text = workspace.config_path.read_text(encoding="utf-8")
    gates = '\n[[gates]]\nmetric = "conditional_accuracy"\nrule = "at_least"\nvalue = 0.9\n'
    workspace.config_path.write_text(text + gates, encoding="utf-8")
    return Workspace(workspace.root)  # a fresh object: the config is read once per Workspace


def test_promotion_goes_through_the_gates(seeded: SeededCatalog, keys: dict[str, dict[str, str]]) -> None:
    with seeded.catalog.session() as session:
        for version, accuracy in (("digits-v1", 0.95), ("digits-v2", 0.5)):
            session.add(
                Evaluation(
                    model_version_id=version,
                    dataset_version_id="ds-annot-0002",
                    metrics={"conditional_accuracy": accuracy},
                )
            )
    editor = keys["editor"]
    with TestClient(create_app(write_gates(seeded.workspace))) as client:
        detail = client.get("/api/v1/models/digits-v2", headers=keys["viewer"]).json()
        assert detail["promotable"] is False
        assert detail["gates"][0]["message"] == "conditional_accuracy 0.5 < 0.9 (at least)"
        url = "/api/v1/models/digits-v2/promote"
        assert client.post(url, json={}, headers=keys["reviewer"]).status_code == 403
        assert client.post("/api/v1/models/digits-v1/promote", json={}, headers=editor).status_code == 200

        refused = client.post(url, json={"alias": "champion"}, headers=editor)
        assert refused.status_code == 409
        assert "conditional_accuracy 0.5 < 0.9" in refused.json()["detail"]
        assert "--force" in refused.json()["hint"]
        assert refused.json()["gates"][0]["passed"] is False
        assert [e.to_version_id for e in alias_history(seeded.catalog, "digits")] == ["digits-v1"]

        no_reason = client.post(url, json={"force": True}, headers=editor)
        assert no_reason.status_code == 422
        assert client.post(url, json={"colour": "red"}, headers=editor).status_code == 422
        forced = client.post(url, json={"force": True, "reason": "new style on purpose"}, headers=editor)
        assert forced.status_code == 200 and forced.json()["forced"] is True
        history = alias_history(seeded.catalog, "digits")
        assert history[-1].actor == "api:ana-editor" and history[-1].forced

        back = client.post("/api/v1/models/digits/rollback", json={}, headers=editor).json()
        assert (back["version_id"], back["previous_id"]) == ("digits-v1", "digits-v2")
        archived = client.post("/api/v1/models/digits-v2/archive", headers=editor)
        assert archived.status_code == 200 and archived.json() == {"id": "digits-v2", "archived": True}
        listed = client.get("/api/v1/models", headers=keys["viewer"]).json()
        assert [m["id"] for m in listed["items"]] == ["digits-v1"]
        assert listed["items"][0]["aliases"] == ["champion"]
        assert listed["items"][0]["latest_evaluation"]["metrics"] == {"conditional_accuracy": 0.95}
        refused_archived = client.post(url, json={}, headers=editor)
        assert refused_archived.status_code == 400 and "archived" in refused_archived.json()["detail"]


def sse_events(text: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_generation_end_to_end_through_a_worker(
    client: TestClient, seeded: SeededCatalog, keys: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    version = register_tiny(seeded.workspace, seeded.catalog, "vae", tmp_path)
    body = {"model": "tiny-vae", "labels": ["a", "b"], "per_class": 2, "seed": 3}
    accepted = client.post("/api/v1/generations", json=body, headers=keys["editor"])
    assert accepted.status_code == 202, accepted.text
    answer = accepted.json()
    assert (answer["model_version"], answer["items"], answer["status"]) == (version, 4, "queued")
    job = client.get(answer["status_url"], headers=keys["viewer"]).json()
    assert (job["status"], job["kind"], job["params"]["model"]) == ("queued", "generate", version)

    finished = run_once(seeded.workspace)
    assert finished is not None and finished.id == answer["job_id"]
    job = client.get(answer["status_url"], headers=keys["viewer"]).json()
    assert job["status"] == "done", job["error"]
    assert job["progress"] == 1.0
    content_ids = job["result"]["content_ids"]
    assert len(content_ids) == 4
    with seeded.catalog.session() as session:
        stored = session.scalars(select(ContentItem.id).where(ContentItem.model_version_id == version)).all()
    assert sorted(stored) == sorted(content_ids)

    stream = client.get(answer["events_url"], headers=keys["viewer"])
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = sse_events(stream.text)
    assert events[0][0] == "progress" and events[-1][0] == "end"
    assert events[-1][1]["result"]["content_ids"] == content_ids  # type: ignore[index]

    listed = client.get("/api/v1/jobs", params={"kind": "generate"}, headers=keys["viewer"]).json()
    assert [j["id"] for j in listed["items"]] == [answer["job_id"]]
    cancel_done = client.post(f"/api/v1/jobs/{answer['job_id']}/cancel", headers=keys["editor"])
    assert cancel_done.status_code == 409 and "already done" in cancel_done.json()["detail"]


def test_bad_generation_requests_queue_nothing(
    client: TestClient, seeded: SeededCatalog, keys: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    register_tiny(seeded.workspace, seeded.catalog, "vae", tmp_path)
    editor = {**keys["editor"], "Content-Type": "application/json"}
    url = "/api/v1/generations"
    cases: list[tuple[str, bytes, int, str]] = [
        ("malformed JSON", b'{"model": "tiny-vae",', 422, "JSON"),
        ("unknown field", b'{"model": "tiny-vae", "gpu": true}', 422, "Extra inputs"),
        ("wrong type", b'{"model": "tiny-vae", "count": "many"}', 422, "integer"),
        ("injection in model", json.dumps({"model": INJECTION}).encode(), 422, "pattern"),
        ("unknown model", b'{"model": "nope"}', 404, "no model version or model named 'nope'"),
        ("unknown class", b'{"model": "tiny-vae", "labels": ["z"]}', 400, "no class 'z'"),
        ("prompts to an image model", b'{"model": "tiny-vae", "prompts": ["hi"]}', 400, "not prompts"),
        ("unknown channel", b'{"model": "tiny-vae", "channel": "tv"}', 400, "unknown channel 'tv'"),
        ("count 0", b'{"model": "tiny-vae", "count": 0}', 422, "greater than or equal"),
        ("oversized", json.dumps({"model": "tiny-vae", "prompts": ["x" * 1900] * 10}).encode(), 413, ""),
    ]
    for what, body, status, needle in cases:
        response = client.post(url, content=body, headers=editor)
        assert response.status_code == status, (what, response.status_code, response.text)
        assert needle in response.text, (what, response.text)
    assert client.post(url, json={"model": "tiny-vae"}, headers=keys["reviewer"]).status_code == 403
    assert client.post(url, json={"model": "tiny-vae"}).status_code == 401
    assert jobs_stored(seeded) == 0


def test_cancel_a_queued_job_through_the_api(
    client: TestClient, seeded: SeededCatalog, keys: dict[str, dict[str, str]]
) -> None:
    job_id = queue.enqueue(seeded.catalog, "train", {"dataset": "ds-annot-0002"}, created_by="t")
    assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers=keys["viewer"]).status_code == 403
    cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=keys["editor"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert queue.claim(seeded.catalog, "w") is None
    assert client.post("/api/v1/jobs/" + "f" * 32 + "/cancel", headers=keys["editor"]).status_code == 404


def test_review_queue_approve_and_reject(
    client: TestClient, seeded: SeededCatalog, keys: dict[str, dict[str, str]]
) -> None:
    flagged, other = seeded.content_ids[0], seeded.content_ids[1]
    verdict = {"check": "nsfw", "passed": False, "score": 0.97, "reason": "skin-tone share 0.97 > 0.8"}
    with seeded.catalog.session() as session:
        session.execute(
            update(ContentItem)
            .where(ContentItem.id.in_([flagged, other]))
            .values(status="review", verdicts=[verdict])
        )
    reviewer = keys["reviewer"]
    assert client.get("/api/v1/review", headers=keys["viewer"]).status_code == 403
    waiting = client.get("/api/v1/review", headers=reviewer).json()["items"]
    assert [item["id"] for item in waiting] == [flagged, other]
    assert waiting[0]["failed_checks"] == [verdict]

    approved = client.post(f"/api/v1/review/{flagged}/approve", json={"note": "fine"}, headers=reviewer)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert approved.json()["review_log"][-1]["actor"] == "api:ana-reviewer"
    no_reason = client.post(f"/api/v1/review/{other}/reject", json={}, headers=reviewer)
    assert no_reason.status_code == 422
    rejected = client.post(f"/api/v1/review/{other}/reject", json={"reason": "a logo"}, headers=reviewer)
    assert rejected.json()["status"] == "rejected"
    again = client.post(f"/api/v1/review/{flagged}/approve", headers=reviewer)
    assert again.status_code == 400 and "cannot become approved" in again.json()["detail"]
    missing = client.post("/api/v1/review/ffffffff/approve", headers=reviewer)
    assert missing.status_code == 404
    assert client.get("/api/v1/review", headers=reviewer).json()["items"] == []


def test_annotation_queue_and_labels(
    client: TestClient, seeded: SeededCatalog, keys: dict[str, dict[str, str]]
) -> None:
    with seeded.catalog.session() as session:
        for record in ("r1", "r2"):
            session.add(
                AnnotationTask(dataset_version_id="ds-annot-0002", record_id=record, suggested_label="7")
            )
    reviewer = keys["reviewer"]
    queue_page = client.get("/api/v1/annotations/queue", headers=reviewer).json()
    assert queue_page["annotator"] == "ana-reviewer"
    assert [t["record_id"] for t in queue_page["tasks"]] == ["r1", "r2"]
    assert queue_page["counts"] == [
        {"dataset_version_id": "ds-annot-0002", "open": 2, "done": 0, "annotations": 0}
    ]
    task_id = queue_page["tasks"][0]["id"]
    labelled = client.post(f"/api/v1/annotations/{task_id}", json={"label": "1"}, headers=reviewer)
    assert labelled.status_code == 200
    assert (labelled.json()["status"], labelled.json()["my_label"]) == ("done", "1")
    after = client.get("/api/v1/annotations/queue", headers=reviewer).json()
    assert [t["record_id"] for t in after["tasks"]] == ["r2"]
    assert (
        client.post(f"/api/v1/annotations/{task_id}", json={"label": ""}, headers=reviewer).status_code == 422
    )
    assert client.post("/api/v1/annotations/99999", json={"label": "1"}, headers=reviewer).status_code == 404
    huge = client.post(f"/api/v1/annotations/{2**40}", json={"label": "1"}, headers=reviewer)
    assert huge.status_code == 422
    assert (
        client.post(f"/api/v1/annotations/{task_id}", json={"label": "1"}, headers=keys["viewer"]).status_code
        == 403
    )


@pytest.fixture
def live_server(seeded: SeededCatalog) -> Iterator[str]:
    """A real uvicorn server on a free localhost port, in a thread (TestClient buffers whole streams)."""
    with serve_in_thread(seeded.workspace) as base_url:
        yield base_url


def test_event_stream_follows_a_running_job_until_it_ends(
    live_server: str, seeded: SeededCatalog, keys: dict[str, dict[str, str]]
) -> None:
    catalog = seeded.catalog
    job_id = queue.enqueue(catalog, "generate", {"model": "digits-v1"}, created_by="t")
    assert queue.claim(catalog, "w1") is not None  # a worker (this test) holds it
    url = f"{live_server}/api/v1/jobs/{job_id}/events"
    seen: list[tuple[str, dict[str, object]]] = []
    with httpx.stream("GET", url, headers=keys["viewer"], timeout=30) as response:
        assert response.status_code == 200
        block: list[str] = []
        for line in response.iter_lines():
            if line:
                block.append(line)
                continue
            if not block or block[0].startswith(":"):
                block = []
                continue
            fields = dict(entry.split(": ", 1) for entry in block)
            block = []
            event = (fields["event"], json.loads(fields["data"]))
            seen.append(event)
            # play the worker: each change is made only after the stream showed the previous state
            if len(seen) == 1:
                assert event[1]["status"] == "running"
                queue.report_progress(catalog, job_id, "w1", 0.5, "half way")
            elif len(seen) == 2:
                assert (event[1]["progress"], event[1]["message"]) == (0.5, "half way")
                queue.finish(catalog, job_id, "w1", {"content_ids": ["abc"]})
    assert [name for name, _ in seen] == ["progress", "progress", "progress", "end"]
    assert seen[2][1]["status"] == "done"
    assert seen[3][1]["result"] == {"content_ids": ["abc"]}
