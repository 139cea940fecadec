"""Simulated audiences: personas that browse the public gallery API and react like people.

Each simulated viewer (its own pseudonymous cookie) walks the published items in the
order the gallery lists them and, for the item at position i:

    looks at it      with probability exp(−i / attention)            (position bias)
    → impression
    likes it         with probability base + (peak − base) · a,       a = clip(appeal + noise, 0, 1)
    else dislikes it with probability dislike · (1 − a)

where `appeal` is the persona's hidden preference (feedback/personas.py) computed from the
file it downloaded. Everything goes through the public HTTP API — GET /api/v1/publications,
GET the file, POST /api/v1/feedback — exactly as real viewers' browsers do, so the models
learn only from the reactions, never from the preference function.

Idempotency keys are derived from (persona, seed, round, viewer, publication, kind): running
the same round again (a loop killed mid-round) stores nothing twice.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from genloop.errors import GenloopError
from genloop.feedback.personas import Persona, ViewedItem

VIEWER_COOKIE = "genloop_viewer"
MAX_RETRIES_ON_429 = 5


class HttpClient(Protocol):
    """What the simulation needs of an HTTP client: httpx.Client or FastAPI's TestClient."""

    def get(self, url: str, **kwargs: Any) -> Any: ...

    def post(self, url: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class AudienceConfig:
    viewers: int = 30
    items_per_viewer: int = 40
    """How far down the listing a viewer scrolls at most."""
    base_rate: float = 0.08
    """Like probability of an item the persona does not care for (appeal 0)."""
    peak_rate: float = 0.9
    """Like probability at appeal 1."""
    dislike_rate: float = 0.3
    noise: float = 0.05
    """Standard deviation of the Gaussian noise on appeal (moods differ)."""
    attention: float = 25.0
    """Position bias: the chance to look at the item at position i is exp(−i / attention)."""
    impressions: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.viewers < 1 or self.items_per_viewer < 1:
            raise GenloopError("an audience needs at least one viewer who looks at one item")
        for name in ("base_rate", "peak_rate", "dislike_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise GenloopError(f"{name} must be a probability in [0, 1] (got {getattr(self, name)})")
        if self.attention <= 0 or self.noise < 0:
            raise GenloopError("attention must be > 0 and noise ≥ 0")


@dataclass
class PublicationTally:
    appeal: float
    impressions: int = 0
    likes: int = 0
    dislikes: int = 0


@dataclass
class SimulationReport:
    persona: str
    round: int
    viewers: int
    sent: int = 0
    """Feedback requests the server accepted (stored or replayed)."""
    replayed: int = 0
    """Of those, events the server already had (same idempotency key: a re-run round)."""
    per_publication: dict[str, PublicationTally] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def likes(self) -> int:
        return sum(t.likes for t in self.per_publication.values())

    @property
    def dislikes(self) -> int:
        return sum(t.dislikes for t in self.per_publication.values())

    @property
    def impressions(self) -> int:
        return sum(t.impressions for t in self.per_publication.values())

    @property
    def like_rate(self) -> float:
        """Likes per impression (the share of looks that ended in a like)."""
        looks = sum(t.impressions for t in self.per_publication.values())
        return self.likes / looks if looks else 0.0


def _key(*parts: object) -> str:
    return "sim:" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:40]


def _listing(client: HttpClient, limit: int, model_version_id: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while len(items) < limit:
        params: dict[str, Any] = {"limit": min(200, limit - len(items)), "offset": offset}
        if model_version_id:
            params["model_version_id"] = model_version_id
        response = client.get("/api/v1/publications", params=params)
        if response.status_code != 200:
            raise GenloopError(
                f"GET /api/v1/publications answered {response.status_code}: {response.text[:200]}"
            )
        page = response.json()
        items.extend(page["items"])
        if not page.get("has_more"):
            break
        offset += len(page["items"])
    return items


def _post(client: HttpClient, body: dict[str, Any], viewer: str) -> Any:
    for attempt in range(MAX_RETRIES_ON_429 + 1):
        # the viewer id travels as the browser would send it: the pseudonymous cookie
        response = client.post("/api/v1/feedback", json=body, headers={"Cookie": f"{VIEWER_COOKIE}={viewer}"})
        if response.status_code != 429 or attempt == MAX_RETRIES_ON_429:
            return response
        time.sleep(min(5.0, float(response.headers.get("retry-after", "1"))))
    return response


def simulate_audience(
    client: HttpClient,
    persona: Persona,
    config: AudienceConfig = AudienceConfig(),
    *,
    round: int = 0,
    limit: int = 200,
    model_version_id: str | None = None,
) -> SimulationReport:
    """One round of `config.viewers` viewers with `persona`'s taste over the newest `limit` items."""
    listing = _listing(client, limit, model_version_id)
    report = SimulationReport(persona.name, round, config.viewers)
    if not listing:
        report.notes.append("nothing is published yet: no one to react to")
        return report
    appeal: dict[str, float] = {}
    for position, item in enumerate(listing):
        response = client.get(item["image_url"])
        if response.status_code != 200:
            report.notes.append(f"{item['publication_id']}: file answered {response.status_code}; skipped")
            continue
        viewed = ViewedItem(item["publication_id"], item["modality"], response.content, position)
        appeal[item["publication_id"]] = persona.appeal(viewed)
        report.per_publication[item["publication_id"]] = PublicationTally(appeal[item["publication_id"]])
    rng = np.random.default_rng([config.seed, round])
    impressions = config.impressions
    for viewer_index in range(config.viewers):
        viewer = (
            "sim-" + hashlib.sha256(f"{persona.name}|{config.seed}|{viewer_index}".encode()).hexdigest()[:24]
        )
        for position, item in enumerate(listing[: config.items_per_viewer]):
            publication = item["publication_id"]
            if publication not in appeal or rng.random() > math.exp(-position / config.attention):
                continue
            tally = report.per_publication[publication]
            tally.impressions += 1  # the look itself, whether or not the server records impressions
            mood = float(np.clip(appeal[publication] + rng.normal(0.0, config.noise), 0.0, 1.0))
            reactions = ["impression"] if impressions else []
            if rng.random() < config.base_rate + (config.peak_rate - config.base_rate) * mood:
                reactions.append("like")
                tally.likes += 1
            elif rng.random() < config.dislike_rate * (1.0 - mood):
                reactions.append("dislike")
                tally.dislikes += 1
            for kind in reactions:
                key = _key(persona.name, config.seed, round, viewer_index, publication, kind)
                body = {"publication_id": publication, "kind": kind, "idempotency_key": key}
                response = _post(client, body, viewer)
                if response.status_code == 422 and kind == "impression":
                    impressions = False  # a server without impression events: looks are counted here only
                    report.notes.append("the server does not accept impressions; counted locally only")
                    continue
                if response.status_code not in (200, 201):
                    raise GenloopError(
                        f"POST /api/v1/feedback ({kind} on {publication}) answered {response.status_code}: "
                        f"{response.text[:200]}"
                    )
                report.sent += 1
                report.replayed += int(bool(response.json().get("replayed")))
    return report
