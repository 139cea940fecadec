"""The webhook channel: each publication is POSTed, HMAC-signed, to a URL you run.

    [channels.cms]
    kind = "webhook"
    url = "https://cms.example.com/hooks/genloop"
    secret_env = "CMS_WEBHOOK_SECRET"    # the NAME of the variable holding the secret
    max_attempts = 6                     # then the delivery is dead (replayable)
    timeout_seconds = 5

Publishing queues a WebhookDelivery row in the same transaction as the publication (an
outbox: no publication without its delivery, no delivery without its publication);
`genloop publish deliver` (or the job worker, via `publish.deliveries.deliver_due`) sends it.

What the receiver gets (see `deliveries.request_for`)::

    POST <url>
    Content-Type: application/json
    X-Genloop-Delivery: <delivery id>        stable across retries: de-duplicate on it
    X-Genloop-Event: publication.created
    X-Genloop-Timestamp: <unix seconds>      also `sent_at` in the body
    X-Genloop-Signature: sha256=<hex>        HMAC-SHA256(secret, the exact body bytes)

    {"id": <delivery id>, "event": "publication.created", "sent_at": "...", "attempt": n,
     "data": {"publication": {...}, "item": {...}, "labels": {...}, "file_url": "/published/<id>"}}

The timestamp is inside the signed body, so a receiver can refuse old replays; verify the
signature over the raw body before parsing it (`verify_signature` below shows how).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sqlalchemy.orm import Session

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, Publication, WebhookDelivery, utcnow
from genloop.errors import ConfigError
from genloop.publish.channels.registry import ChannelSetup, register_channel
from genloop.publish.publication import place
from genloop.storage import stable_hash

EVENT_PUBLISHED = "publication.created"
SIGNATURE_HEADER = "X-Genloop-Signature"
DELIVERY_HEADER = "X-Genloop-Delivery"
EVENT_HEADER = "X-Genloop-Event"
TIMESTAMP_HEADER = "X-Genloop-Timestamp"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """What a receiver runs: does `header` sign exactly `body` under `secret` (constant time)?"""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def delivery_id_for(channel: str, publication_id: str, event: str = EVENT_PUBLISHED) -> str:
    return stable_hash({"channel": channel, "publication": publication_id, "event": event}, 32)


def file_url_path(publication_id: str) -> str:
    """Where the server serves the published copy (`server/api/feeds.py`)."""
    return f"/published/{publication_id}"


def publication_payload(publication: Publication, item: ContentItem) -> dict[str, Any]:
    return {
        "publication": {
            "id": publication.id,
            "channel": publication.channel,
            "arm": publication.arm,
            "published_at": (publication.published_at or utcnow()).isoformat(),
        },
        "item": {
            "id": item.id,
            "modality": item.modality,
            "model_version_id": item.model_version_id,
            "condition": item.condition,
            "seed": item.seed,
            "status": item.status,
        },
        "labels": item.labels,
        "file_url": file_url_path(publication.id) if publication.path else None,
        "content_url": f"/content/{item.id}",
    }


@register_channel("webhook")
class WebhookChannel:
    def __init__(self, setup: ChannelSetup) -> None:
        policy = setup.policy
        if not policy.url or not policy.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"[channels.{setup.name}] has kind webhook but no http(s) url (got {policy.url!r})",
                hint='add url = "https://..." (where to POST each publication)',
            )
        if not policy.secret_env:
            raise ConfigError(
                f"[channels.{setup.name}] has kind webhook but no secret_env",
                hint='add secret_env = "NAME_OF_AN_ENVIRONMENT_VARIABLE" holding the HMAC secret '
                "(never the secret itself in genloop.toml)",
            )
        self.setup = setup
        self.name = setup.name
        self.url: str = policy.url

    def publish(self, catalog: Catalog, content_item_id: str, *, arm: str | None = None) -> str:
        return place(self.setup, catalog, content_item_id, arm=arm, on_create=self._enqueue).publication_id

    def _enqueue(self, session: Session, publication: Publication, item: ContentItem) -> None:
        session.add(
            WebhookDelivery(
                id=delivery_id_for(self.name, publication.id),
                channel=self.name,
                publication_id=publication.id,
                url=self.url,
                payload=publication_payload(publication, item),
                status="pending",
                attempts=0,
                next_attempt_at=utcnow(),
            )
        )
