"""Ad-copy batches past the synchronous cap: POST /api/v1/adcopy/jobs queues an `adcopy-generate` job,
a real worker (genloop.jobs.worker.Worker, in a thread of this process) writes the lines with the
tiny real GPT of tests/apps/test_adcopy_cli.py, and the job's status, result and the candidates
list are read back over real HTTP (TestClient) from a real SQLite catalog.

Checked as a user would notice: every line of the result meets its product's constraints (the
studio's own checker) and is listed as a candidate; a re-run of the same job stores no line
twice; a cancelled job stops between products; refused requests queue nothing.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apps.test_adcopy_cli import IMPOSSIBLE, PRODUCTS, trained  # noqa: F401 - the module fixture
from genloop.apps.adcopy.constraints import violations
from genloop.apps.adcopy.products import Product, product_from_row
from genloop.catalog.models import ContentItem, Job
from genloop.errors import GenloopError
from genloop.jobs import queue
from genloop.jobs.worker import Worker, run_once
from genloop.server.api.adcopy import MAX_JOB_BODY_BYTES
from genloop.server.app import MAX_BODY_BYTES
from server import test_adcopy_api
from server.test_adcopy_api import URL, Service, as_json

service = test_adcopy_api.service  # the API tests' fixture: a TestClient with editor and viewer keys
JOBS = f"{URL}/jobs"
PROGRESS = re.compile(r"^(\d+) of 13 products(, \d+ lines)?$")


def twelve_products(prefix: str = "") -> list[dict[str, str]]:
    """12 table rows (three of each built-in product, own ids): more than one sync request takes."""
    return [{**PRODUCTS[i % 4], "id": f"{prefix}{PRODUCTS[i % 4]['id']}-{i}"} for i in range(12)]


@pytest.fixture
def worker(service: Service) -> Iterator[Worker]:
    """A real worker looping over the queue in a thread until the test ends."""
    running = Worker(service.workspace, heartbeat_seconds=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=running.run, kwargs={"poll_seconds": 0.05, "stop": stop}, daemon=True)
    thread.start()
    yield running
    stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the worker did not stop"


def wait_done(service: Service, status_url: str, timeout: float = 300.0) -> tuple[dict[str, Any], list[str]]:
    """Poll GET /api/v1/jobs/{id} until the job ends; the finished job and the messages seen."""
    deadline, messages = time.monotonic() + timeout, []
    while True:
        job = service.client.get(status_url, headers=service.auth("viewer")).json()
        if job["message"] and (not messages or messages[-1] != job["message"]):
            messages.append(job["message"])
        if job["status"] in ("done", "failed", "cancelled"):
            return job, messages
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout} s: {job}"
        time.sleep(0.05)


def jobs_stored(service: Service) -> int:
    return service.count(Job)


def test_a_job_writes_past_the_sync_cap_and_a_rerun_stores_nothing_twice(
    service: Service, worker: Worker
) -> None:
    rows = twelve_products()
    body = {"products": [as_json(r) for r in rows + IMPOSSIBLE[:1]], "n": 4, "seed": 11}
    editor, viewer = service.auth("editor"), service.auth("viewer")
    too_big = service.client.post(f"{URL}/generate", json={**body, "skip_impossible": True}, headers=editor)
    assert too_big.status_code == 400 and "POST /api/v1/adcopy/jobs" in too_big.json()["hint"]

    accepted = service.client.post(JOBS, json={**body, "skip_impossible": True}, headers=editor)
    assert accepted.status_code == 202, accepted.text
    answer = accepted.json()
    assert (answer["status"], answer["model_version"]) == ("queued", "adcopy-v1")
    assert (answer["products"], answer["lines"]) == (12, 48)  # the impossible one is skipped
    assert list(answer["impossible"]) == ["bad-en"]
    assert "contains the banned 'free'" in answer["impossible"]["bad-en"][0]

    job, messages = wait_done(service, answer["status_url"])
    assert job["status"] == "done", job["error"]
    assert (job["kind"], job["progress"], job["params"]["model"]) == ("adcopy-generate", 1.0, "adcopy-v1")
    assert job["params"]["model_ref"] == "adcopy" and job["params"]["n"] == 4
    # "k of N products" as it ran: a poll may or may not catch the last product's report before "done"
    counted = [int(m[1]) for m in map(PROGRESS.match, messages) if m]
    assert len(set(counted)) >= 2 and counted == sorted(counted) and max(counted) <= 13, messages
    assert messages[-1] == "done"

    result = job["result"]
    checker: dict[str, Product] = {r["id"]: product_from_row(r, "test") for r in rows}
    assert [p["product_id"] for p in result["products"]] == [r["id"] for r in rows] + ["bad-en"]
    skipped = result["products"][-1]
    assert skipped["lines"] == [] and skipped["impossible"] and result["impossible"] == ["bad-en"]
    content_ids: list[str] = []
    for entry in result["products"][:-1]:
        assert entry["model_version"] == "adcopy-v1" and entry["sampled"] >= 4 and entry["impossible"] == []
        assert [line["rank"] for line in entry["lines"]] == list(range(1, len(entry["lines"]) + 1))
        assert len(entry["lines"]) <= 4
        for line in entry["lines"]:  # real generations, judged by the checker the studio uses
            assert violations(line["text"], checker[entry["product_id"]]) == [], (entry["product_id"], line)
        listed = service.client.get(f"{URL}/products/{entry['product_id']}/candidates", headers=viewer)
        assert listed.status_code == 200, listed.text
        candidates = {c["content_item_id"]: c for c in listed.json()["items"]}
        for line in entry["lines"]:
            candidate = candidates[line["content_item_id"]]
            assert candidate["text"] == line["text"] and candidate["satisfied"], candidate
        content_ids += [line["content_item_id"] for line in entry["lines"]]
    assert result["lines"] == len(content_ids) > 12  # past what one sync request (10 products) writes
    assert len(set(content_ids)) == len(content_ids)
    assert result["sampled"] == sum(p["sampled"] for p in result["products"])
    stored = service.count(ContentItem)

    # the same job again (a retry, or a worker that died half way): the same lines, none stored twice
    again = service.client.post(JOBS, json={**body, "skip_impossible": True}, headers=editor)
    assert again.status_code == 202, again.text
    rerun, _ = wait_done(service, again.json()["status_url"])
    assert rerun["status"] == "done", rerun["error"]
    rerun_ids = [line["content_item_id"] for p in rerun["result"]["products"] for line in p["lines"]]
    assert rerun_ids == content_ids
    assert service.count(ContentItem) == stored


def test_a_cancelled_job_stops_between_products(service: Service, worker: Worker) -> None:
    rows = twelve_products("cancel-")
    body = {"products": [as_json(r) for r in rows], "n": 4}
    editor, viewer = service.auth("editor"), service.auth("viewer")
    accepted = service.client.post(JOBS, json=body, headers=editor)
    assert accepted.status_code == 202, accepted.text
    answer = accepted.json()
    deadline = time.monotonic() + 300

    def written() -> int:  # products reported done so far ("k of 12 products, …"); a poll may skip a k
        message = service.client.get(answer["status_url"], headers=viewer).json()["message"] or ""
        found = re.match(r"^(\d+) of 12 products", message)
        return int(found[1]) if found else 0

    while written() < 2:  # the first two products are written; the next is being written
        assert time.monotonic() < deadline, "the job never reported its first products"
        time.sleep(0.02)
    cancelled = service.client.post(f"/api/v1/jobs/{answer['job_id']}/cancel", headers=editor)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelling", cancelled.text
    job, _ = wait_done(service, answer["status_url"])
    assert job["status"] == "cancelled" and job["result"] is None
    assert 2 / 12 <= job["progress"] < 1.0 and job["message"].startswith("cancelled at")

    def candidates(product_id: str) -> int:
        listed = service.client.get(f"{URL}/products/{product_id}/candidates", headers=viewer)
        return len(listed.json()["items"])

    assert candidates(rows[0]["id"]) > 0 and candidates(rows[1]["id"]) > 0  # kept: stored before the stop
    assert [candidates(r["id"]) for r in rows[8:]] == [0, 0, 0, 0]  # never started


def test_refused_requests_queue_nothing(service: Service) -> None:
    client, editor, viewer = service.client, service.auth("editor"), service.auth("viewer")
    good = {"products": [as_json(r) for r in twelve_products()], "n": 4}
    before = (jobs_stored(service), service.count(ContentItem))

    with_impossible = good["products"] + [as_json(r) for r in IMPOSSIBLE]
    impossible = client.post(JOBS, json={**good, "products": with_impossible}, headers=editor)
    assert impossible.status_code == 400, impossible.text
    detail = impossible.json()["detail"]
    assert "2 product(s) have constraints no line can meet" in detail
    assert "'bad-en': required 'free shipping' contains the banned 'free'" in detail and "'bad-zh'" in detail
    nothing_left = client.post(
        JOBS, json={"products": [as_json(r) for r in IMPOSSIBLE], "skip_impossible": True}, headers=editor
    )
    assert nothing_left.status_code == 400 and "would write nothing" in nothing_left.json()["detail"]
    bad_language = client.post(
        JOBS, json={"products": [{**as_json(PRODUCTS[0]), "language": "fr"}]}, headers=editor
    )
    assert bad_language.status_code == 400 and "products:1: field 'language' is 'fr'" in bad_language.text
    unknown_model = client.post(JOBS, json={**good, "model": "ghost"}, headers=editor)
    assert unknown_model.status_code == 404 and "'ghost'" in unknown_model.json()["detail"]
    header = "id,name,language,max_length\n"
    table = header + "".join(f"p{i},Lumo,en,9\n" for i in range(501))
    too_many = client.post(JOBS, json={"table": table}, headers=editor)
    assert too_many.status_code == 400 and "at most 500" in too_many.json()["detail"]

    assert client.post(JOBS, json=good, headers=viewer).status_code == 403
    assert client.post(JOBS, json=good).status_code == 401
    for payload in (
        {},
        {"products": good["products"][:1], "table": header + "p1,Lumo,en,9\n"},  # both sources
        {"products": []},
        {"products": good["products"][:1], "n": 41},  # past the lines per product a job writes
        {"products": good["products"][:1], "n": 0},
        {"products": [{**good["products"][0], "colour": "red"}]},  # a misspelt field is not dropped
        {"products": good["products"][:1] * 501},
        {"products": good["products"][:1], "temperature": "hot"},
    ):
        response = client.post(JOBS, json=payload, headers=editor)
        assert response.status_code == 422, (str(payload)[:80], response.text)
    malformed = client.post(
        JOBS, content=b'{"products": [', headers={**editor, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 422
    assert (jobs_stored(service), service.count(ContentItem)) == before


def test_a_table_past_the_apps_body_cap_fits_one_job(service: Service) -> None:
    products = [{**as_json(PRODUCTS[i % 4]), "id": f"big-{i}"} for i in range(300)]
    body = json.dumps({"products": products, "n": 40}).encode()
    assert len(body) > MAX_BODY_BYTES  # what any other route refuses with a 413
    editor = {**service.auth("editor"), "Content-Type": "application/json"}
    accepted = service.client.post(JOBS, content=body, headers=editor)
    assert accepted.status_code == 202, accepted.text
    answer = accepted.json()
    assert (answer["products"], answer["lines"], answer["impossible"]) == (300, 12_000, {})
    job = queue.get(service.catalog, answer["job_id"])
    assert len(job.params["products"]) == 300 and job.params["products"][0]["id"] == "big-0"
    assert "where" not in job.params["products"][0] and "audience" not in job.params["products"][1]
    cancelled = service.client.post(f"/api/v1/jobs/{answer['job_id']}/cancel", headers=editor)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"  # queued: at once
    huge = json.dumps({"table": "x" * MAX_JOB_BODY_BYTES}).encode()
    assert service.client.post(JOBS, content=huge, headers=editor).status_code == 413


def test_a_job_queued_by_hand_with_bad_params_fails_with_the_reason(service: Service) -> None:
    row = {"id": "p1", "name": "Lumo", "language": "en", "max_length": 9}
    cases = [
        ({"model": "adcopy-v1"}, "needs `products`"),
        (
            {"model": "adcopy-v1", "products": [{**row, "max_length": "long"}]},
            "products:1: field 'max_length'",
        ),
        ({"products": [row]}, "needs `model`"),
        ({"model": "adcopy-v1", "products": [row], "n": 41}, "`n` must be a whole number in 1..40"),
        ({"model": "adcopy-v1", "products": [row], "temperature": "hot"}, "`temperature` must be a number"),
    ]
    for params, reason in cases:
        job_id = queue.enqueue(service.catalog, "adcopy-generate", params, created_by="test")
        job = run_once(service.workspace, kinds=["adcopy-generate"])
        assert job is not None and job.id == job_id
        assert job.status == "failed" and reason in (job.error or ""), (params, job.error)
    # a product table is bigger than other kinds' params: the kind has its own cap
    big = {"model": "adcopy-v1", "products": [row], "note": "x" * (queue.MAX_PARAMS_BYTES + 1)}
    queue.cancel(service.catalog, queue.enqueue(service.catalog, "adcopy-generate", big, created_by="test"))
    with pytest.raises(GenloopError, match="at most 524,288 are accepted"):
        queue.enqueue(service.catalog, "adcopy-generate", {"x": "y" * 600_000}, created_by="test")
