"""Where a round's feedback comes from.

* `SimulatedAudience`: a persona (feedback/personas.py) reacts through the public HTTP API — a
  running `genloop serve` at `url`, or the workspace's app served in-process — exactly as
  `genloop simulate` does. Its idempotency keys name the round, so a re-run round stores
  nothing twice.
* `RealAudience`: waits until the round's publications have `min_events` reactions (likes,
  dislikes, ratings) or `wait_seconds` pass, polling the catalog.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent
from genloop.config import LoopAudienceConfig
from genloop.errors import GenloopError
from genloop.feedback.personas import Recogniser, persona_from_spec
from genloop.feedback.simulate import AudienceConfig, simulate_audience
from genloop.feedback.sql import current_events
from genloop.progress import say
from genloop.workspace import Workspace

REACTIONS = ("like", "dislike", "rating")
POLL_SECONDS = 5.0


@dataclass(frozen=True)
class AudienceReport:
    source: str
    """persona name, or "real viewers"."""
    sent: int
    replayed: int
    notes: tuple[str, ...] = ()


class Audience(Protocol):
    def react(self, round: int, publication_ids: Sequence[str]) -> AudienceReport: ...


def workspace_recogniser(workspace: Workspace) -> Recogniser:
    """The evaluate stage's classifier as a persona's eyes (likes-class needs one)."""
    from genloop.evaluate.classifier import image_recogniser, latest_cached_classifier

    classifier = latest_cached_classifier(workspace)
    if classifier is None:
        raise GenloopError(
            "likes-class needs eyes: no trained classifier in this workspace",
            hint="run `genloop evaluate` once (it trains the classifier on the real data)",
        )
    return image_recogniser(classifier)


@contextmanager
def api_client(workspace: Workspace, url: str | None) -> Iterator[Any]:
    """An HTTP client on `url`, or on the workspace's API served in this process (quietly):
    an httpx.Client or FastAPI's TestClient, both what feedback/simulate.py's HttpClient needs."""
    if url:
        import httpx

        with httpx.Client(base_url=url.rstrip("/"), timeout=30.0) as client:
            yield client
        return
    from fastapi.testclient import TestClient

    from genloop.server.app import create_app

    app = create_app(workspace)  # builds the app, which configures its access log
    access_log = logging.getLogger("genloop.access")
    level = access_log.level
    access_log.setLevel(logging.WARNING)  # in-process, one JSON line per request is noise
    try:
        with TestClient(app) as client:
            yield client
    finally:
        access_log.setLevel(level)


class SimulatedAudience:
    """`recognise`: the eyes of a likes-class persona (default: the workspace's classifier)."""

    def __init__(
        self,
        workspace: Workspace,
        config: LoopAudienceConfig,
        *,
        url: str | None = None,
        recognise: Recogniser | None = None,
    ) -> None:
        if not config.persona:
            raise GenloopError(
                "a simulated audience needs a persona",
                hint="pass --simulate likes-class:LABEL (or set [loop.audience].persona)",
            )
        if recognise is None and config.persona.startswith("likes-class"):
            recognise = workspace_recogniser(workspace)
        self.persona = persona_from_spec(config.persona, recognise=recognise)
        self.workspace, self.url = workspace, url
        self.config = AudienceConfig(
            viewers=config.viewers,
            items_per_viewer=config.items_per_viewer,
            base_rate=config.base_rate,
            peak_rate=config.peak_rate,
            dislike_rate=config.dislike_rate,
            noise=config.noise,
            attention=config.attention,
            seed=config.seed,
        )

    def react(self, round: int, publication_ids: Sequence[str]) -> AudienceReport:
        # the round's publications are the newest ones: the listing shows exactly them
        with api_client(self.workspace, self.url) as client:
            report = simulate_audience(
                client, self.persona, self.config, round=round, limit=len(publication_ids)
            )
        unexpected = set(report.per_publication) - set(publication_ids)
        notes = list(report.notes)
        if unexpected:
            notes.append(f"{len(unexpected)} newer publications from elsewhere were shown too")
        return AudienceReport(self.persona.name, report.sent, report.replayed, tuple(notes))


class RealAudience:
    def __init__(self, catalog: Catalog, *, wait_seconds: float, min_events: int) -> None:
        self.catalog, self.wait_seconds, self.min_events = catalog, wait_seconds, min_events

    def reactions(self, publication_ids: Sequence[str]) -> int:
        if not publication_ids:
            return 0
        with self.catalog.session() as session:
            query = (
                select(func.count())
                .select_from(FeedbackEvent)
                .where(
                    FeedbackEvent.publication_id.in_(list(publication_ids)),
                    FeedbackEvent.kind.in_(REACTIONS),
                    current_events(list(publication_ids)),
                )
            )
            return int(session.scalar(query) or 0)

    def react(self, round: int, publication_ids: Sequence[str]) -> AudienceReport:
        deadline = time.monotonic() + self.wait_seconds
        seen = self.reactions(publication_ids)
        say(f"round {round}: waiting for {self.min_events} reactions from real viewers (have {seen})")
        while seen < self.min_events and time.monotonic() < deadline:
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            seen = self.reactions(publication_ids)
        notes: tuple[str, ...] = ()
        if seen < self.min_events:
            notes = (f"waited {self.wait_seconds:g} s: {seen} of {self.min_events} reactions arrived",)
        return AudienceReport("real viewers", seen, 0, notes)


def audience_for(workspace: Workspace, catalog: Catalog, config: Any, *, url: str | None = None) -> Audience:
    """`[loop.audience].persona` set → a simulated audience; else real viewers."""
    if config.loop.audience.persona:
        return SimulatedAudience(workspace, config.loop.audience, url=url)
    return RealAudience(catalog, wait_seconds=config.loop.wait_seconds, min_events=config.loop.min_events)
