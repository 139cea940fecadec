"""Webhook delivery against a real HTTP receiver on loopback that fails (500), then times out,
then recovers: every event is processed exactly once, signatures verify, a dead-lettered
delivery replayed arrives once."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from genloop.catalog.models import WebhookDelivery
from genloop.cli.main import app
from genloop.config import GenloopConfig, parse_config
from genloop.errors import ConfigError
from genloop.publish import publish_items
from genloop.publish.channels.webhook import verify_signature
from genloop.publish.deliveries import Backoff, deliver_due, deliver_loop, list_deliveries, replay
from server.conftest import SeededCatalog

SECRET = "s3cret-for-tests-only"
FAST = Backoff(base_seconds=0.01, cap_seconds=0.05, jitter=0.5)
TIMEOUT_SECONDS = 0.3


@dataclass
class Receiver:
    """Per delivery id, attempt n gets plan[n] ("fail" → 500, "slow" → answers after the
    sender's timeout, "ok" → 200); it processes each id once, however often it arrives."""

    plan: list[str]
    port: int = 0
    attempts: Counter[str] = field(default_factory=Counter)
    processed: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    bodies: dict[str, dict[str, object]] = field(default_factory=dict)
    always_fail_paths: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        delivery_id = headers.get("x-genloop-delivery", "")
        if not verify_signature(SECRET.encode(), body, headers.get("x-genloop-signature")):
            with self.lock:
                self.bad_signatures += 1
            return 401
        with self.lock:
            attempt = self.attempts[delivery_id]
            self.attempts[delivery_id] += 1
        if path in self.always_fail_paths:
            return 500
        step = self.plan[min(attempt, len(self.plan) - 1)]
        if step == "fail":
            return 500
        if step == "slow":
            time.sleep(TIMEOUT_SECONDS * 4)  # the sender has given up by now
        with self.lock:
            if self.processed[delivery_id] == 0:  # de-duplicate on the delivery id
                self.processed[delivery_id] += 1
                self.bodies[delivery_id] = json.loads(body)
        return 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(plan=["fail", "slow", "ok"])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            code = state.handle(self.path, headers, body)
            try:
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender timed out and left

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _config(port: int) -> GenloopConfig:
    return parse_config(
        {
            "channels": {
                "cms": {
                    "kind": "webhook",
                    "url": f"http://127.0.0.1:{port}/hook",
                    "secret_env": "CMS_HOOK_SECRET",
                    "max_attempts": 5,
                    "timeout_seconds": TIMEOUT_SECONDS,
                    "propagator": "cms",
                },
                "flaky": {
                    "kind": "webhook",
                    "url": f"http://127.0.0.1:{port}/flaky",
                    "secret_env": "CMS_HOOK_SECRET",
                    "max_attempts": 2,
                    "timeout_seconds": TIMEOUT_SECONDS,
                },
            }
        }
    )


def _drain(seeded: SeededCatalog, config: GenloopConfig, rounds: int = 60) -> None:
    for _ in range(rounds):
        deliver_due(seeded.catalog, config, backoff=FAST)
        with seeded.catalog.session() as session:
            pending = session.scalars(
                select(WebhookDelivery.id).where(WebhookDelivery.status == "pending")
            ).all()
        if not pending:
            return
        time.sleep(0.02)


def test_every_event_arrives_exactly_once_through_failures_and_timeouts(
    seeded: SeededCatalog, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(receiver.port)
    workspace, catalog = seeded.workspace, seeded.catalog
    ids = list(seeded.content_ids[:3])
    publications = publish_items(catalog, ids, "cms", workspace=workspace, config=config, arm="A")

    monkeypatch.delenv("CMS_HOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"CMS_HOOK_SECRET .* is not set"):
        deliver_due(catalog, config, backoff=FAST)
    assert receiver.attempts == Counter()  # nothing was sent, nothing claimed

    monkeypatch.setenv("CMS_HOOK_SECRET", SECRET)
    _drain(seeded, config)

    views, total = list_deliveries(catalog, channel="cms")
    assert total == 3 and {v.status for v in views} == {"delivered"}
    assert all(v.attempts == 3 for v in views)  # 500, timeout, then 200
    assert receiver.bad_signatures == 0
    assert set(receiver.processed) == {v.id for v in views} and set(receiver.processed.values()) == {1}
    delivered = {body["data"]["publication"]["id"] for body in receiver.bodies.values()}  # type: ignore[index]
    assert delivered == set(publications)
    body = next(iter(receiver.bodies.values()))
    data = body["data"]
    assert body["event"] == "publication.created" and isinstance(data, dict)
    assert data["publication"]["arm"] == "A" and data["item"]["id"] in ids
    assert data["file_url"] == f"/published/{data['publication']['id']}"

    # publishing again queues nothing new: the delivery id is stable per publication
    assert publish_items(catalog, ids, "cms", workspace=workspace, config=config) == publications
    assert list_deliveries(catalog, channel="cms")[1] == 3


def test_dead_letter_then_replay_arrives_once(
    seeded: SeededCatalog, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CMS_HOOK_SECRET", SECRET)
    receiver.plan = ["ok"]
    receiver.always_fail_paths.add("/flaky")
    config = _config(receiver.port)
    [publication] = publish_items(
        seeded.catalog, seeded.content_ids[:1], "flaky", workspace=seeded.workspace, config=config
    )
    _drain(seeded, config)
    [dead] = list_deliveries(seeded.catalog, status="dead")[0]
    assert dead.attempts == 2 and dead.last_error is not None and "HTTP 500" in dead.last_error
    assert dead.publication_id == publication and receiver.processed == Counter()

    receiver.always_fail_paths.clear()  # the receiver is fixed
    runner = CliRunner()
    workspace_option = ["--workspace", str(seeded.workspace.root)]
    listed = runner.invoke(app, ["publish", "deliveries", "--status", "dead", *workspace_option])
    assert listed.exit_code == 0 and dead.id in listed.output
    assert replay(seeded.catalog, all_dead=True) == [dead.id]
    stop = threading.Event()  # what `genloop publish deliver --loop` runs, until Ctrl-C
    sender = threading.Thread(
        target=deliver_loop, args=(seeded.catalog, config), kwargs={"interval_seconds": 0.02, "stop": stop}
    )
    sender.start()
    for _ in range(500):
        if receiver.processed:
            break
        time.sleep(0.02)
    stop.set()
    sender.join()
    assert receiver.processed == Counter({dead.id: 1})
    [again] = list_deliveries(seeded.catalog, status="delivered")[0]
    assert again.id == dead.id and again.attempts == 1
