"""`/metrics` (Prometheus text) and the JSON request log, on a real catalog and a real server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient

from genloop.server.auth import create_api_key
from genloop.server.logs import ACCESS_LOGGER, JsonFormatter, LoopBatchedStreamHandler
from genloop.server.metrics import LATENCY_BUCKETS, RequestMetrics, escape_label
from genloop.workspace import DATABASE_URL_ENV, Workspace

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog

SAMPLE_LINE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$')


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def samples(text: str) -> dict[str, float]:
    """Sample lines of a scrape, by their `name{labels}`; every line must be valid text format."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert SAMPLE_LINE.match(line), f"not Prometheus text format: {line!r}"
        series, value = line.rsplit(" ", 1)
        values[series] = float(value)
    return values


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    """The JSON lines `genloop.access` writes, captured beside its stderr handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def log_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


# -- /metrics ------------------------------------------------------------------------------------


def test_metrics_needs_a_viewer_key_and_counts_the_catalog(client: TestClient, seeded: SeededCatalog) -> None:
    assert client.get("/metrics").status_code == 401
    viewer = create_api_key(seeded.catalog, name="prometheus", role="viewer")
    vote = {"publication_id": seeded.publication_ids[0], "kind": "like"}
    assert client.post("/api/v1/feedback", json=vote).status_code == 201

    response = client.get("/metrics", headers=bearer(viewer.secret))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    values = samples(response.text)
    assert values['genloop_content_items{status="ready"}'] == 6
    assert values['genloop_publications{channel="gallery"}'] == 6
    assert values['genloop_feedback_events{kind="like"}'] == 1
    assert not any(name.startswith("genloop_jobs{") for name in values)  # no jobs yet: no series
    feedback = [
        series
        for series in values
        if series.startswith("genloop_http_requests_total{")
        and 'route="/api/v1/feedback"' in series
        and 'status="201"' in series
    ]
    assert feedback and values[feedback[0]] >= 1
    assert viewer.secret not in response.text and "Bearer" not in response.text


def test_request_metrics_use_route_templates_not_raw_paths(client: TestClient, seeded: SeededCatalog) -> None:
    viewer = create_api_key(seeded.catalog, name="prometheus", role="viewer")
    for content_id in seeded.content_ids[:3]:
        client.get(f"/api/v1/content/{content_id}?token=do-not-keep")
    client.get("/no/such/page/12345")
    client.get("/static/app.css")
    client.get("/static/probe-67890.php")
    client.get("/openapi.json")
    text = client.get("/metrics", headers=bearer(viewer.secret)).text
    for raw in ("do-not-keep", seeded.content_ids[0], "12345", "67890", "app.css"):
        assert raw not in text
    for template in ("/api/v1/content/{content_id}", "unmatched", "/static/{path}", "/openapi.json"):
        assert f'route="{template}"' in text


def test_histogram_is_cumulative_and_ends_in_the_count() -> None:
    metrics = RequestMetrics()
    for seconds in (0.001, 0.02, 0.02, 0.3, 30.0):
        metrics.observe("GET", "/x/{id}", 200, seconds)
    lines = [line for line in metrics.render() if line.startswith("genloop_http_request_duration_seconds")]
    buckets = [float(line.rsplit(" ", 1)[1]) for line in lines if "_bucket" in line]
    assert len(buckets) == len(LATENCY_BUCKETS) + 1
    assert buckets == sorted(buckets)
    assert buckets[0] == 1 and buckets[LATENCY_BUCKETS.index(0.025)] == 3 and buckets[-1] == 5
    assert any(line.endswith(" 30.341000") for line in lines if "_sum" in line)
    assert any(line.endswith(" 5") for line in lines if "_count" in line)


def test_label_values_are_escaped() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    metrics = RequestMetrics()
    metrics.observe("GET", '/weird"{x}', 404, 0.01)
    assert all(SAMPLE_LINE.match(line) for line in metrics.render() if not line.startswith("#"))


# -- JSON request log ----------------------------------------------------------------------------


def test_every_request_is_one_json_line_without_secrets(
    client: TestClient, seeded: SeededCatalog, access_log: io.StringIO
) -> None:
    editor = create_api_key(seeded.catalog, name="ci", role="editor")
    content_id = seeded.content_ids[0]
    page = client.get(f"/content/{content_id}?token=sekrit-in-query", headers={"X-Request-ID": "trace-42.a"})
    assert page.headers["x-request-id"] == "trace-42.a"
    forged = client.get("/healthz", headers={"X-Request-ID": 'evil" "injected'})
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["x-request-id"])
    refused = client.get("/api/v1/keys", headers=bearer(editor.secret))
    assert refused.status_code == 403

    lines = log_lines(access_log)
    assert len(lines) == 3
    first, second, third = lines
    assert first["request_id"] == "trace-42.a"
    assert first["route"] == "/content/{content_id}" and first["method"] == "GET"
    assert first["status"] == 200 and first["principal"] == "anonymous"
    assert isinstance(first["duration_ms"], float) and first["ts"]
    assert second["request_id"] == forged.headers["x-request-id"]
    assert third["principal"] == editor.id and third["status"] == 403  # who was refused, by key id
    raw = access_log.getvalue()
    for secret in ("sekrit-in-query", editor.secret, content_id, "injected"):
        assert secret not in raw


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_genloop_serve_writes_json_request_lines_to_stderr(sqlite_workspace: Workspace) -> None:
    """A real uvicorn server: stderr carries our JSON lines, not uvicorn's access log with queries."""
    port = free_port()
    code = "import typer; from genloop.cli.serve_cmd import serve; typer.run(serve)"
    env = {key: value for key, value in os.environ.items() if key != DATABASE_URL_ENV}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "--port",
            str(port),
            "-w",
            str(sqlite_workspace.root),
            "--log-level",
            "info",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answered = None
        deadline = time.monotonic() + 60
        while answered is None and time.monotonic() < deadline and process.poll() is None:
            try:
                answered = httpx.get(
                    f"http://127.0.0.1:{port}/healthz?token=topsecret",
                    headers={"X-Request-ID": "real-1"},
                    timeout=2,
                )
            except httpx.TransportError:
                time.sleep(0.2)
        assert answered is not None and answered.status_code == 200
        assert answered.headers["x-request-id"] == "real-1"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "topsecret" not in stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    health = [record for record in records if record.get("request_id") == "real-1"]
    assert len(health) == 1, stderr
    assert health[0]["route"] == "/healthz" and health[0]["status"] == 200
    assert health[0]["logger"] == ACCESS_LOGGER and health[0]["principal"] == "anonymous"


def test_the_lines_of_one_loop_turn_are_written_together_in_order() -> None:
    class CountedWrites(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

    stream = CountedWrites()
    handler = LoopBatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("genloop.test.batched")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:

        async def one_turn() -> str:
            for i in range(5):
                logger.info("line %d", i)
            during = stream.getvalue()
            await asyncio.sleep(0)  # the turn ends: its lines are written
            await asyncio.sleep(0)
            return during

        assert asyncio.run(one_turn()) == ""  # nothing written while the turn ran
        assert stream.getvalue() == "".join(f"line {i}\n" for i in range(5))
        assert stream.writes == 1
        logger.info("off the loop")  # no loop on this thread: written at once
        assert stream.getvalue().endswith("line 4\noff the loop\n")

        async def flushed_before_the_turn_ends() -> tuple[bool, bool]:
            logger.info("last words")
            waiting = not stream.getvalue().endswith("last words\n")
            handler.flush()  # what logging's shutdown does at exit
            return waiting, stream.getvalue().endswith("off the loop\nlast words\n")

        assert asyncio.run(flushed_before_the_turn_ends()) == (True, True)
    finally:
        logger.removeHandler(handler)
