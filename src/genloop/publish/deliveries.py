"""Webhook deliveries: send what is due, retry with backoff, dead-letter, replay.

A delivery (a `WebhookDelivery` row, queued by the webhook channel) is `pending` until a
POST to its URL answers 2xx (`delivered`). Every other outcome — a non-2xx status, a
timeout, a refused connection — is a failed attempt: the next one is scheduled after

    delay(n) = min(cap, base · 2^(n-1)) · (1 + U(0, jitter))      capped at `cap` again

and after the channel's `max_attempts` failures the delivery is `dead` (the dead-letter
list: `genloop publish deliveries --status dead`), until someone replays it
(`genloop publish replay ID | --dead`, or POST /api/v1/webhook-deliveries/{id}/replay).

Delivery is at least once: several senders (the CLI loop, job workers) may run at the
same time, so each claims a row with one conditional UPDATE (moving its `next_attempt_at`
a lease into the future) before sending; a sender that dies mid-POST leaves the row to be
retried when the lease ends. The receiver de-duplicates on `X-Genloop-Delivery`, which is
stable across retries and replays — together that is exactly-once processing.

Secrets come only from the environment variable the channel names in `secret_env`.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, update

from genloop.catalog import Catalog
from genloop.catalog.models import WebhookDelivery, utcnow
from genloop.config import GenloopConfig
from genloop.errors import ConfigError, GenloopError, NotFoundError
from genloop.feedback.events import as_utc
from genloop.publish.channels.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_PUBLISHED,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

STATUSES = ("pending", "delivered", "dead")
LEASE_EXTRA_SECONDS = 30.0


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 2.0
    cap_seconds: float = 3600.0
    jitter: float = 0.25

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts`-th failure (1-based)."""
        raw = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        return min(self.cap_seconds, raw * (1 + (rng or random).uniform(0, self.jitter)))


@dataclass
class DeliveryRound:
    """What one `deliver_due` call did, by delivery id."""

    delivered: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.delivered) + len(self.retrying) + len(self.dead)


@dataclass(frozen=True)
class DeliveryView:
    id: str
    channel: str
    publication_id: str | None
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def channel_secret(config: GenloopConfig, channel: str) -> bytes:
    """The HMAC secret of `channel`, from the environment variable its `secret_env` names."""
    policy = config.channel_policy(channel)
    if not policy.secret_env:
        raise ConfigError(
            f"[channels.{channel}] has no secret_env: its webhook deliveries cannot be signed",
            hint='add secret_env = "NAME" to the section and export NAME=<a long random secret>',
        )
    value = os.environ.get(policy.secret_env, "")
    if not value:
        raise ConfigError(
            f"the environment variable {policy.secret_env} (secret_env of [channels.{channel}]) is not set",
            hint=f"export {policy.secret_env}=<the secret the receiver verifies signatures with>",
        )
    return value.encode("utf-8")


def request_for(delivery: WebhookDelivery, secret: bytes, *, attempt: int) -> tuple[bytes, dict[str, str]]:
    """The exact body and headers of one attempt (the signature covers the body bytes)."""
    sent = time.time()
    envelope = {
        "id": delivery.id,
        "event": EVENT_PUBLISHED,
        "sent_at": datetime.fromtimestamp(sent, tz=UTC).isoformat(),
        "attempt": attempt,
        "data": delivery.payload,
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "genloop-webhook/1",
        DELIVERY_HEADER: delivery.id,
        EVENT_HEADER: EVENT_PUBLISHED,
        TIMESTAMP_HEADER: str(int(sent)),
        SIGNATURE_HEADER: sign(secret, body),
    }
    return body, headers


def deliver_due(
    catalog: Catalog,
    config: GenloopConfig,
    *,
    limit: int = 100,
    backoff: Backoff = Backoff(),
    client: httpx.Client | None = None,
    now: datetime | None = None,
) -> DeliveryRound:
    """Send every pending delivery whose time has come (at most `limit`); see the module doc.

    Raises ConfigError before sending anything when a due delivery's channel has no secret.
    """
    now = now or utcnow()
    with catalog.session() as session:
        due = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.channel)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        ).all()
    secrets = {channel: channel_secret(config, channel) for channel in {c for _, c in due}}
    outcome = DeliveryRound()
    own_client = client is None
    http = client or httpx.Client(follow_redirects=False)
    try:
        for delivery_id, channel in due:
            policy = config.channel_policy(channel)
            lease = timedelta(seconds=policy.timeout_seconds + LEASE_EXTRA_SECONDS)
            if not _claim(catalog, delivery_id, now, utcnow() + lease):
                continue  # another sender has it
            _attempt(
                catalog,
                http,
                delivery_id,
                secrets[channel],
                policy.max_attempts,
                policy.timeout_seconds,
                backoff,
                outcome,
            )
    finally:
        if own_client:
            http.close()
    return outcome


def _claim(catalog: Catalog, delivery_id: str, due_by: datetime, lease_until: datetime) -> bool:
    with catalog.session() as session:
        result = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= due_by,
            )
            .values(next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)


def _attempt(
    catalog: Catalog,
    http: httpx.Client,
    delivery_id: str,
    secret: bytes,
    max_attempts: int,
    timeout: float,
    backoff: Backoff,
    outcome: DeliveryRound,
) -> None:
    with catalog.session() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            return
        session.expunge(delivery)
    attempt = delivery.attempts + 1
    body, headers = request_for(delivery, secret, attempt=attempt)
    error: str | None = None
    try:
        response = http.post(delivery.url, content=body, headers=headers, timeout=timeout)
        if not 200 <= response.status_code < 300:
            error = f"HTTP {response.status_code}: {response.text[:200]}"
    except httpx.TimeoutException:
        error = f"timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    with catalog.session() as session:
        row = session.get(WebhookDelivery, delivery_id)
        if row is None:
            return
        row.attempts = attempt
        if error is None:
            row.status, row.delivered_at, row.last_error = "delivered", utcnow(), None
            outcome.delivered.append(delivery_id)
        elif attempt >= max_attempts:
            row.status, row.last_error = "dead", error
            outcome.dead.append(delivery_id)
        else:
            row.last_error = error
            row.next_attempt_at = utcnow() + timedelta(seconds=backoff.delay(attempt))
            outcome.retrying.append(delivery_id)


def deliver_loop(
    catalog: Catalog,
    config: GenloopConfig,
    *,
    interval_seconds: float = 2.0,
    stop: threading.Event | None = None,
    backoff: Backoff = Backoff(),
) -> DeliveryRound:
    """Call `deliver_due` every `interval_seconds` until `stop` is set; the sum of what it did."""
    stop = stop or threading.Event()
    total = DeliveryRound()
    with httpx.Client(follow_redirects=False) as client:
        while not stop.is_set():
            done = deliver_due(catalog, config, backoff=backoff, client=client)
            total.delivered += done.delivered
            total.retrying += done.retrying
            total.dead += done.dead
            if not done:
                stop.wait(interval_seconds)
    return total


def replay(catalog: Catalog, delivery_ids: Sequence[str] = (), *, all_dead: bool = False) -> list[str]:
    """Queue deliveries again with a fresh attempt budget (the same id: receivers de-duplicate)."""
    if not delivery_ids and not all_dead:
        raise GenloopError("nothing to replay", hint="name delivery ids, or pass --dead for every dead one")
    with catalog.session() as session:
        rows = list(
            session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(list(delivery_ids))))
        )
        missing = sorted(set(delivery_ids) - {row.id for row in rows})
        if missing:
            raise NotFoundError(
                f"no webhook delivery {missing[0]!r}", hint="`genloop publish deliveries` lists them"
            )
        if all_dead:
            rows += list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.status == "dead")))
        for row in rows:
            row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
        return sorted({row.id for row in rows})


def list_deliveries(
    catalog: Catalog,
    *,
    status: str | None = None,
    channel: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[DeliveryView], int]:
    """Deliveries, newest first, and how many match in all."""
    if status is not None and status not in STATUSES:
        raise GenloopError(f"unknown delivery status {status!r}", hint=f"statuses: {', '.join(STATUSES)}")
    conditions = []
    if status is not None:
        conditions.append(WebhookDelivery.status == status)
    if channel is not None:
        conditions.append(WebhookDelivery.channel == channel)
    with catalog.session() as session:
        total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(*conditions)) or 0
        rows = session.scalars(
            select(WebhookDelivery)
            .where(*conditions)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return [_view(row) for row in rows], total


def get_delivery(catalog: Catalog, delivery_id: str) -> DeliveryView:
    with catalog.session() as session:
        row = session.get(WebhookDelivery, delivery_id)
        if row is None:
            raise NotFoundError(
                f"no webhook delivery {delivery_id!r}", hint="GET /api/v1/webhook-deliveries lists them"
            )
        return _view(row)


def _view(row: WebhookDelivery) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        channel=row.channel,
        publication_id=row.publication_id,
        url=row.url,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=as_utc(row.next_attempt_at),
        last_error=row.last_error,
        created_at=as_utc(row.created_at),
        delivered_at=as_utc(row.delivered_at) if row.delivered_at else None,
    )
