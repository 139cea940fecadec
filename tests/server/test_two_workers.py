"""Two real uvicorn processes on one PostgreSQL catalog agree on everything.

No in-process state may differ between API workers: two servers (two processes, two
ports, the same workspace and catalog) take likes concurrently, race on the same
idempotency keys, and then report the same counts. Each server is a real uvicorn over
real HTTP on loopback.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import func, select

from genloop.catalog.models import FeedbackEvent
from genloop.server.auth import ADMIN_KEY_ENV
from genloop.server.deps import VIEWER_COOKIE
from genloop.workspace import DATABASE_URL_ENV

if TYPE_CHECKING:
    from server.conftest import SeededCatalog

ADMIN_KEY = "two-workers-" + secrets.token_urlsafe(24)
SERVE = (
    "import sys, uvicorn; from pathlib import Path;"
    "from genloop.server.app import create_app; from genloop.workspace import Workspace;"
    "uvicorn.run(create_app(Workspace(Path(sys.argv[1])), long_running=True),"
    " host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server {url} exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server {url} did not answer /healthz within {timeout} s")


@pytest.fixture
def two_servers(seeded: SeededCatalog) -> Iterator[tuple[str, str]]:
    env = {**os.environ, DATABASE_URL_ENV: seeded.catalog.url, ADMIN_KEY_ENV: ADMIN_KEY}
    ports = [_free_port(), _free_port()]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SERVE, str(seeded.workspace.root), str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, processes, strict=True):
            _wait_healthy(url, process)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _viewer() -> str:
    return secrets.token_urlsafe(18)


def _send(url: str, publication_id: str, kind: str, viewer: str, key: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/api/v1/feedback",
        json={"publication_id": publication_id, "kind": kind, "idempotency_key": key},
        cookies={VIEWER_COOKIE: viewer},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def _counts(url: str) -> dict[str, tuple[int, int]]:
    page = httpx.get(f"{url}/api/v1/publications", params={"limit": 200}, timeout=30).json()
    return {item["publication_id"]: (item["likes"], item["dislikes"]) for item in page["items"]}


@pytest.mark.postgres
@pytest.mark.parametrize("catalog_url", ["postgres"], indirect=True)
def test_two_workers_on_one_postgres_catalog(seeded: SeededCatalog, two_servers: tuple[str, str]) -> None:
    first, second = two_servers
    likes_on, dislikes_on = seeded.publication_ids[0], seeded.publication_ids[1]
    # 40 distinct viewers, alternating servers, 8 at a time: 30 likes and 10 dislikes
    votes = [(likes_on, "like") if i % 4 else (dislikes_on, "dislike") for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda i: _send((first, second)[i % 2], *votes[i], _viewer(), f"vote-{uuid.uuid4()}"),
                range(len(votes)),
            )
        )
    assert not any(r["replayed"] for r in results)

    # the same event sent to both servers at the same moment, 12 times: stored once each
    def race(n: int) -> list[dict[str, Any]]:
        viewer, key, barrier = _viewer(), f"race-{n}-{uuid.uuid4()}", threading.Barrier(2)

        def fire(url: str) -> dict[str, Any]:
            barrier.wait()
            return _send(url, likes_on, "like", viewer, key)

        with ThreadPoolExecutor(2) as both:
            return list(both.map(fire, (first, second)))

    with ThreadPoolExecutor(4) as pool:
        raced = list(pool.map(race, range(12)))
    for pair in raced:
        assert pair[0]["id"] == pair[1]["id"], "two servers stored one event twice"
        assert sorted(r["replayed"] for r in pair) == [False, True]
    with seeded.catalog.session() as session:
        race_rows = session.scalar(select(func.count()).where(FeedbackEvent.idempotency_key.like("race-%")))
        stored = session.scalar(select(func.count()).select_from(FeedbackEvent))
    assert race_rows == 12 and stored == 40 + 12

    # both servers report the same counts, and the counts are what was sent
    counts_first, counts_second = _counts(first), _counts(second)
    assert counts_first == counts_second
    assert counts_first[likes_on] == (30 + 12, 0)
    assert counts_first[dislikes_on] == (0, 10)
