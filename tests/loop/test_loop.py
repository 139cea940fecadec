"""`genloop loop` end to end on a tiny real workspace: rounds, arms, decisions, and a killed round.

The workspace trains a tiny digit VAE and the evaluate stage's classifier (the persona's eyes
and the reward model's features); a `likes-class:0` audience reacts through the HTTP API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.conftest import TINY_CONFIG, make_workspace
from typer.testing import CliRunner

from genloop.catalog import open_catalog
from genloop.catalog.models import AllocationDecision, FeedbackEvent, LoopRound, Publication
from genloop.catalog.session import close_all
from genloop.cli.main import app
from genloop.config import GateConfig
from genloop.loop.audience import AudienceReport, SimulatedAudience
from genloop.loop.rounds import run_loop
from genloop.models.label_prior import PRIOR_FILE
from genloop.models.versions import load_model_version, resolve_model_version
from genloop.pipeline.runner import run_pipeline
from genloop.server.app import create_app
from genloop.server.auth import create_api_key
from genloop.workspace import DATABASE_URL_ENV

LOOP_CONFIG = (
    TINY_CONFIG.replace("[improve]\nepochs = 1\n", "")
    + """
[improve]
recipe = "reward-weighted"
epochs = 1
samples_per_class = 6
reward_beta = 2.0

[loop]
per_round = 24
min_exposure = 10

[loop.audience]
persona = "likes-class:0"
viewers = 8
items_per_viewer = 24
base_rate = 0.05
"""
)


class KilledAfterFeedback:
    """The real audience, then a crash before the round could record its feedback phase."""

    def __init__(self, audience: SimulatedAudience) -> None:
        self.audience, self.calls = audience, 0

    def react(self, round: int, publication_ids: Sequence[str]) -> AudienceReport:
        self.calls += 1
        report = self.audience.react(round, publication_ids)
        if self.calls == 1:
            raise RuntimeError("killed mid-round")
        return report


def _count(catalog: object, model: type, *where: object) -> int:
    with catalog.session() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_two_rounds_resume_after_a_kill_and_record_every_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    ws = make_workspace(tmp_path / "ws", LOOP_CONFIG)
    catalog = open_catalog(ws.database_url)
    try:
        run_pipeline(ws, catalog, until="evaluate")
        audience = SimulatedAudience(ws, ws.config.loop.audience)
        killer = KilledAfterFeedback(audience)

        # round 1 dies after its feedback was stored but before the phase was recorded
        with pytest.raises(RuntimeError, match="killed mid-round"):
            run_loop(ws, catalog, ws.config, killer, rounds=1)
        (row,) = _rounds(catalog)
        assert row.phase == "published"
        published = _count(catalog, Publication)
        events = _count(catalog, FeedbackEvent)
        assert published == 24 and events > 0

        # the re-run resumes inside round 1: same publications, every event replayed, none added
        (first,) = run_loop(ws, catalog, ws.config, killer, rounds=1)
        assert first.resumed_at == "published"
        assert _count(catalog, Publication) == published
        assert _count(catalog, FeedbackEvent) == events
        feedback = first.stats["feedback"]
        assert feedback["replayed"] == feedback["sent"] > 0
        assert first.challenger is None and set(first.stats["publications"]) == {"champion"}
        improve = first.stats["improve"]
        assert improve["recipe"] == "reward-weighted"
        challenger = improve["challenger"]
        prior = json.loads((load_model_version(ws, catalog, challenger).path / PRIOR_FILE).read_text())
        assert prior["source"].startswith("reward-weighted fine-tune of")
        assert abs(sum(prior["prior"].values()) - 1.0) < 1e-9

        # round 2 shows champion and challenger side by side, evenly (the challenger has no looks yet)
        (second,) = run_loop(ws, catalog, ws.config, audience, rounds=1)
        assert second.challenger == challenger
        pubs = second.stats["publications"]
        # its samples resemble the champion's samples it was tuned on; that is no memorisation
        assert second.stats["held"] == 0
        assert len(pubs["champion"]) == len(pubs["challenger"]) == 12
        assert second.stats["slots"][:4] == ["champion", "challenger", "champion", "challenger"]
        arms = second.stats["feedback"]["arms"]
        assert arms["champion"]["impressions"] > 0 and arms["challenger"]["impressions"] > 0
        arm_of = {p: "loop-r2-challenger" for p in pubs["challenger"]}
        with catalog.session() as session:
            query = select(Publication.id, Publication.arm).where(Publication.id.in_(arm_of))
            stored = {pid: arm for pid, arm in session.execute(query).all()}
        assert stored == arm_of

        # the bandit's decision is recorded with its numbers
        with catalog.session() as session:
            decisions = list(session.scalars(select(AllocationDecision).order_by(AllocationDecision.id)))
        bandit = [d for d in decisions if d.round == 2 and d.action in ("promote", "retire", "continue")]
        assert len(bandit) == 1
        assert bandit[0].challenger_id == challenger
        assert 0.0 <= bandit[0].p_challenger_better <= 1.0
        # the challenger was only ever shown this round: its successes are exactly its likes here
        assert bandit[0].numbers["challenger_counts"][0] == _likes_of(catalog, pubs["challenger"])
        assert [r.phase for r in _rounds(catalog)] == ["done", "done"]

        # the console's analytics page shows the rounds (a curve and a table) and the decisions
        viewer = create_api_key(catalog, name="analyst", role="viewer")
        with TestClient(create_app(ws)) as client:
            assert (
                client.post("/login", data={"key": viewer.secret}, follow_redirects=False).status_code == 303
            )
            page = client.get("/console/analytics").text
        assert 'data-loop-round="digits:1"' in page and 'data-loop-round="digits:2"' in page
        assert "Like-rate per loop round" in page and "<polyline" in page
        assert f"<td>{bandit[0].action}</td>" in page and challenger in page

        result = CliRunner().invoke(app, ["loop", "--status", "--json", "-w", str(ws.root)])
        assert result.exit_code == 0, result.output
        status = json.loads(result.stdout)
        assert [r["round"] for r in status["rounds"]] == [1, 2]
        assert status["decisions"][-1]["action"] == bandit[0].action

        # round 3 under a gate nothing can pass: no challenger goes live, and each refusal is recorded
        impossible = GateConfig(metric="conditional_accuracy", rule="at_least", value=1.01)
        strict = ws.config.model_copy(
            update={
                "gates": [impossible],
                "loop": ws.config.loop.model_copy(
                    update={"min_exposure": 0, "promote_at": 1e-6, "retire_at": 0.0}
                ),
            }
        )
        (third,) = run_loop(ws, catalog, strict, audience, rounds=1)
        made = third.stats["improve"]["challenger"]
        assert third.stats["next_challenger"] is None
        assert [g["passed"] for g in third.stats["improve"]["gates"]] == [False]
        with catalog.session() as session:
            blocked = list(
                session.scalars(
                    select(AllocationDecision).where(
                        AllocationDecision.round == 3, AllocationDecision.action == "gate-blocked"
                    )
                )
            )
        assert made in {d.challenger_id for d in blocked}
        assert all("conditional_accuracy" in d.reason for d in blocked)
        if third.challenger:  # the live challenger the bandit wanted to promote was refused too
            assert third.stats["decision"]["action"] == "gate-blocked"
        assert resolve_model_version(catalog, "digits@champion") != made
    finally:
        close_all()


def _rounds(catalog: object) -> list[LoopRound]:
    with catalog.session() as session:  # type: ignore[attr-defined]
        rows = list(session.scalars(select(LoopRound).order_by(LoopRound.round)))
        session.expunge_all()
        return rows


def _likes_of(catalog: object, publication_ids: Sequence[str]) -> int:
    return _count(
        catalog,
        FeedbackEvent,
        FeedbackEvent.kind == "like",
        FeedbackEvent.publication_id.in_(publication_ids),
    )
