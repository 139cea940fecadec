"""One round of the loop, phase by phase, each recorded so a killed loop resumes where it stopped.

    started ─► generated ─► published ─► feedback ─► decided ─► improved ─► done
      │            │             │            │           │           │
      │            │             │            │           │           └ challenger from the feedback
      │            │             │            │           │             (improve/dispatch.py), offline
      │            │             │            │           │             gates ([[gates]]) or blocked
      │            │             │            │           └ bandit on all looks so far: promote /
      │            │             │            │             retire / keep showing (publish/allocation.py)
      │            │             │            └ simulated persona over HTTP, or wait for real viewers
      │            │             └ in slot order, Publication.arm = loop-rR-champion|challenger
      │            └ `per_round` slots split by Thompson sampling; labels drawn from each
      │              arm's class prior (conditional models), prompts from [generate] (text)
      └ champion = NAME@champion; challenger = the one the last round left live

Why a re-run never double-counts: a round's request seed is fixed by (loop seed, round), so
generation finds the same content ids stored and publishing finds the same publications;
simulated feedback is keyed by (persona, round, viewer, publication, kind). Only the
improvement, killed mid-training, trains again (its half-made run never registered a version).
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from genloop.catalog import Catalog
from genloop.catalog.models import AllocationDecision, LoopRound, ModelVersion, utcnow
from genloop.config import GenloopConfig
from genloop.errors import DataError, GenloopError
from genloop.generate.engine import generate
from genloop.generate.requests import GenerationRequest, modality_of
from genloop.loop.arms import Tally, allocate_slots, arm_name, tally_by_version, tally_of_arm
from genloop.loop.audience import Audience
from genloop.models.gates import GateError, check_gates
from genloop.models.versions import promote, resolve_model_version
from genloop.progress import say
from genloop.publish import publish_content
from genloop.workspace import Workspace

PHASES = ("started", "generated", "published", "feedback", "decided", "improved", "done")
ACTOR = "genloop loop"
ROLES = ("champion", "challenger")


@dataclass
class RoundSummary:
    round: int
    champion: str
    challenger: str | None
    stats: dict[str, Any] = field(default_factory=dict)
    resumed_at: str | None = None
    """The phase a resumed round started after (None: a fresh round)."""

    @property
    def like_rate(self) -> float | None:
        rate = self.stats.get("feedback", {}).get("round", {}).get("like_rate")
        return None if rate is None else float(rate)

    def arm(self, role: str) -> dict[str, Any]:
        return dict(self.stats.get("feedback", {}).get("arms", {}).get(role, {}))


def _reached(phase: str, wanted: str) -> bool:
    return PHASES.index(phase) >= PHASES.index(wanted)


def round_seed(loop_seed: int, round: int) -> int:
    """The request seed of round `round`: fixed, so a re-run round names the same items."""
    return (loop_seed * 100_003 + round) % (2**31)


class LoopState:
    """The loop_rounds rows of one model: open the round to work on, record each phase."""

    def __init__(self, catalog: Catalog, model_name: str) -> None:
        self.catalog, self.name = catalog, model_name

    def rounds(self) -> list[LoopRound]:
        with self.catalog.session() as session:
            query = select(LoopRound).where(LoopRound.model_name == self.name).order_by(LoopRound.round)
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows

    def open(self) -> tuple[LoopRound, bool]:
        """(the unfinished round, True) if any, else (a new round after the last, False)."""
        rows = self.rounds()
        if rows and rows[-1].phase != "done":
            return rows[-1], True
        champion = resolve_model_version(self.catalog, f"{self.name}@champion")
        live = rows[-1].stats.get("next_challenger") if rows else None
        with self.catalog.session() as session:
            row = LoopRound(
                model_name=self.name,
                round=(rows[-1].round + 1) if rows else 1,
                phase="started",
                champion_id=champion,
                challenger_id=live,
                stats={},
                started_at=utcnow(),
            )
            session.add(row)
            session.flush()
            session.expunge(row)
        return row, False

    def save(self, row: LoopRound, phase: str, **changes: Any) -> None:
        """Record that `row` reached `phase` (and its new stats) in one transaction."""
        with self.catalog.session() as session:
            stored = session.get(LoopRound, row.id)
            if stored is None:
                raise GenloopError(f"loop round {row.round} of {self.name} vanished from the catalog")
            stored.phase = phase
            stored.stats = dict(row.stats)
            for key, value in changes.items():
                setattr(stored, key, value)
                setattr(row, key, value)
            if phase == "done":
                stored.finished_at = row.finished_at = utcnow()
        row.phase = phase

    def record_decision(self, round: int | None, action: str, champion: str | None, challenger: str,
                        *, p: float | None, numbers: dict[str, Any], reason: str) -> None:  # fmt: skip
        with self.catalog.session() as session:
            session.add(
                AllocationDecision(
                    model_name=self.name,
                    round=round,
                    action=action,
                    champion_id=champion,
                    challenger_id=challenger,
                    p_challenger_better=p,
                    numbers=numbers,
                    reason=reason,
                    actor=ACTOR,
                    created_at=utcnow(),
                )
            )

    def decision_for(self, round: int, challenger: str) -> AllocationDecision | None:
        """The bandit's decision already recorded for `challenger` in `round`, if any."""
        with self.catalog.session() as session:
            query = select(AllocationDecision).where(
                AllocationDecision.model_name == self.name,
                AllocationDecision.round == round,
                AllocationDecision.challenger_id == challenger,
            )
            row = session.scalars(query.order_by(AllocationDecision.id.desc())).first()
            if row is not None:
                session.expunge(row)
            return row

    def decisions(self) -> list[AllocationDecision]:
        with self.catalog.session() as session:
            query = (
                select(AllocationDecision)
                .where(AllocationDecision.model_name == self.name)
                .order_by(AllocationDecision.id)
            )
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows


class Round:
    """The phases of one round; `run()` does those not yet recorded."""

    def __init__(
        self,
        workspace: Workspace,
        catalog: Catalog,
        config: GenloopConfig,
        state: LoopState,
        row: LoopRound,
        audience: Audience,
    ) -> None:
        self.workspace, self.catalog, self.config = workspace, catalog, config
        self.state, self.row, self.audience = state, row, audience
        self.row.stats = dict(row.stats or {})
        self.seed = round_seed(config.loop.seed, row.round)

    @property
    def stats(self) -> dict[str, Any]:
        return self.row.stats

    def arms(self) -> dict[str, str]:
        """role → model version shown this round."""
        arms = {"champion": str(self.row.champion_id)}
        if self.row.challenger_id:
            arms["challenger"] = self.row.challenger_id
        return arms

    def run(self) -> None:
        steps: tuple[tuple[str, Callable[[], None]], ...] = (
            ("generated", self.generate),
            ("published", self.publish),
            ("feedback", self.feedback),
            ("decided", self.decide),
            ("improved", self.improve),
        )
        for phase, step in steps:
            if _reached(self.row.phase, phase):
                continue
            began = time.perf_counter()
            step()
            self.stats.setdefault("seconds", {})[phase] = round(time.perf_counter() - began, 2)
            self.state.save(self.row, phase, **self._row_changes(phase))
        if self.row.phase != "done":
            self.state.save(self.row, "done")

    def _row_changes(self, phase: str) -> dict[str, Any]:
        if phase == "improved" and self.stats.get("improve", {}).get("challenger"):
            return {"new_challenger_id": self.stats["improve"]["challenger"]}
        return {}

    # -- generate ------------------------------------------------------------------------------

    def generate(self) -> None:
        arms = self.arms()
        evidence = tally_by_version(self.catalog, self.state.name)
        counts = [evidence.get(version, Tally()).arm(version) for version in arms.values()]
        by_version = {version: role for role, version in arms.items()}
        slots = [
            by_version[version]
            for version in allocate_slots(
                counts, self.config.loop.per_round, self.seed, min_exposure=self.config.loop.min_exposure
            )
        ]
        items: dict[str, list[str]] = {}
        review = 0
        for role, want in Counter(slots).items():
            request = self._request(arms[role], want)
            report = generate(self.workspace, self.catalog, request, config=self.config)
            chosen = report.items[:want]
            items[role] = [item.id for item in chosen]
            review += sum(item.status == "review" for item in chosen)
            say(
                f"round {self.row.round}: {role} {arms[role]} made {report.created} new items "
                f"({report.existing} already stored)"
            )
        self.stats.update(slots=slots, items=items, held_for_review=review)

    def _request(self, version: str, count: int) -> GenerationRequest:
        cfg = self.config.generate
        family = self._family(version)
        common: dict[str, Any] = {
            "model": version,
            "params": dict(cfg.params),
            "max_new_tokens": cfg.max_new_tokens,
            "seed": self.seed,
            "producer": cfg.producer,
            "channel": self.config.loop.channel,
        }
        if modality_of(family) == "text":
            prompts = list(cfg.prompts) or [""]
            return GenerationRequest(prompts=prompts, count=math.ceil(count / len(prompts)), **common)
        return GenerationRequest(draw=count, count=count, **common)

    def _family(self, version: str) -> str:
        with self.catalog.session() as session:
            family = session.scalar(select(ModelVersion.family).where(ModelVersion.id == version))
        if family is None:
            raise GenloopError(f"model version {version!r} is not in the catalog")
        return str(family)

    # -- publish -------------------------------------------------------------------------------

    def publish(self) -> None:
        queues = {role: deque(ids) for role, ids in self.stats.get("items", {}).items()}
        publications: dict[str, list[str]] = {role: [] for role in queues}
        held: dict[str, str] = {}
        for role in self.stats.get("slots", []):
            if not queues.get(role):
                continue
            item = queues[role].popleft()
            outcome = publish_content(
                self.catalog,
                [item],
                self.config.loop.channel,
                workspace=self.workspace,
                config=self.config,
                arm=arm_name(self.row.round, role),
            )
            publications[role].extend(outcome.publications)
            held.update(outcome.held)
        self.stats.update(publications=publications, held=len(held))
        total = sum(len(ids) for ids in publications.values())
        say(f"round {self.row.round}: published {total} items on {self.config.loop.channel}")

    def publication_ids(self) -> list[str]:
        return [pid for ids in self.stats.get("publications", {}).values() for pid in ids]

    # -- feedback ------------------------------------------------------------------------------

    def feedback(self) -> None:
        report = self.audience.react(self.row.round, self.publication_ids())
        arms = {
            role: tally_of_arm(self.catalog, self.state.name, arm_name(self.row.round, role))
            for role in self.stats.get("publications", {})
        }
        overall = Tally(
            *(
                sum(getattr(t, f) for t in arms.values())
                for f in ("impressions", "likes", "dislikes", "ratings")
            )
        )
        self.stats["feedback"] = {
            "source": report.source,
            "sent": report.sent,
            "replayed": report.replayed,
            "notes": list(report.notes),
            "arms": {role: tally.as_json() for role, tally in arms.items()},
            "round": overall.as_json(),
        }
        for note in report.notes:
            say(f"[yellow]note:[/yellow] {note}")

    # -- decide --------------------------------------------------------------------------------

    def decide(self) -> None:
        from genloop.publish.allocation import decide

        champion, challenger = str(self.row.champion_id), self.row.challenger_id
        if not challenger:
            self.stats["decision"] = None
            self.stats["live_challenger"] = None
            return
        earlier = self.state.decision_for(self.row.round, challenger)
        if earlier is not None:  # killed after deciding, before the phase was recorded: keep that decision
            done = earlier.action in ("promote", "retire", "gate-blocked")
            self.stats["decision"] = {
                "action": earlier.action,
                "p_challenger_better": earlier.p_challenger_better,
                "reason": earlier.reason,
            }
            self.stats["live_challenger"] = None if done else challenger
            return
        evidence = tally_by_version(self.catalog, self.state.name)
        loop = self.config.loop
        decision = decide(
            evidence.get(champion, Tally()).arm(champion),
            evidence.get(challenger, Tally()).arm(challenger),
            min_exposure=loop.min_exposure,
            promote_at=loop.promote_at,
            retire_at=loop.retire_at,
        )
        numbers = decision.as_json()
        live: str | None
        action: str = decision.action
        reason, live = decision.reason, challenger
        if action == "promote":
            try:
                promote(self.catalog, challenger, gates=self.config.gates, reason=reason, actor=ACTOR)
                live = None
            except GateError as exc:  # the champion moved, or its evaluation changed, since the gate
                action, reason = "gate-blocked", str(exc)
                numbers["gates"] = [r.as_json() for r in exc.results]
                live = None
        elif action == "retire":
            live = None
        self.state.record_decision(
            self.row.round, action, champion, challenger, p=decision.p_challenger_better, numbers=numbers,
            reason=reason,
        )  # fmt: skip
        self.stats["decision"] = {"action": action, "p_challenger_better": decision.p_challenger_better,
                                  "reason": reason}  # fmt: skip
        self.stats["live_challenger"] = live
        say(f"round {self.row.round}: {action} {challenger} — {reason}")

    # -- improve -------------------------------------------------------------------------------

    def improve(self) -> None:
        from genloop.improve.dispatch import improve_model

        live = self.stats.get("live_challenger")
        if live:
            self.stats["improve"] = {"skipped": f"challenger {live} is still being compared live"}
            self.stats["next_challenger"] = live
            return
        try:
            outcome = improve_model(self.workspace, self.catalog, self.config, seed=self.seed)
        except (DataError, GenloopError) as exc:
            # no usable feedback yet (e.g. only likes, no dislikes): the loop goes on with the champion
            self.stats["improve"] = {"skipped": str(exc)}
            self.stats["next_challenger"] = None
            say(f"[yellow]round {self.row.round}: no challenger this round[/yellow] — {exc}")
            return
        gates = check_gates(self.catalog, outcome.challenger, self.config.gates, champion_id=outcome.champion)
        failing = [g for g in gates if not g.passed]
        self.stats["improve"] = {
            "recipe": outcome.recipe,
            "challenger": outcome.challenger,
            "champion": outcome.champion,
            "feedback_dataset": outcome.feedback_dataset,
            "feedback_events": outcome.feedback_events,
            "champion_metrics": _numbers(outcome.champion_metrics),
            "challenger_metrics": _numbers(outcome.challenger_metrics),
            "details": _jsonable(outcome.details),
            "gates": [g.as_json() for g in gates],
        }
        if failing:
            reason = "; ".join(g.message for g in failing)
            self.state.record_decision(
                self.row.round, "gate-blocked", outcome.champion, outcome.challenger, p=None,
                numbers={"gates": [g.as_json() for g in gates]}, reason=reason,
            )  # fmt: skip
            self.stats["next_challenger"] = None
            say(
                f"[yellow]round {self.row.round}: {outcome.challenger} blocked by the gates[/yellow]"
                f" — {reason}"
            )
            return
        self.stats["next_challenger"] = outcome.challenger
        say(
            f"round {self.row.round}: {outcome.challenger} ({outcome.recipe}) passes "
            f"{len(gates)} gate(s); shown beside the champion from the next round"
        )


def _numbers(metrics: dict[str, Any] | None) -> dict[str, float]:
    """The headline numbers of an evaluation (flat floats), for the round's record."""
    if not metrics:
        return {}
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def run_loop(
    workspace: Workspace,
    catalog: Catalog,
    config: GenloopConfig,
    audience: Audience,
    *,
    rounds: int | None,
    on_round: Callable[[RoundSummary], None] | None = None,
) -> list[RoundSummary]:
    """Finish an interrupted round if there is one, then run new rounds until `rounds` are done
    in this call (None: forever)."""
    state = LoopState(catalog, config.project.name)
    summaries: list[RoundSummary] = []
    while rounds is None or len(summaries) < rounds:
        row, resumed = state.open()
        resumed_at = row.phase if resumed else None
        if resumed:
            say(f"resuming round {row.round} after its `{row.phase}` phase")
        Round(workspace, catalog, config, state, row, audience).run()
        summary = RoundSummary(
            row.round, str(row.champion_id), row.challenger_id, dict(row.stats), resumed_at
        )
        summaries.append(summary)
        if on_round is not None:
            on_round(summary)
    return summaries


def last_round_number(catalog: Catalog, model_name: str) -> int:
    with catalog.session() as session:
        value = session.scalar(select(func.max(LoopRound.round)).where(LoopRound.model_name == model_name))
    return int(value or 0)


def loop_history(
    catalog: Catalog, *, decisions_limit: int = 50
) -> tuple[list[LoopRound], list[AllocationDecision]]:
    """Every model's loop rounds (by model, round) and the newest decisions, for the console."""
    with catalog.session() as session:
        rounds = list(session.scalars(select(LoopRound).order_by(LoopRound.model_name, LoopRound.round)))
        decisions = list(
            session.scalars(
                select(AllocationDecision).order_by(AllocationDecision.id.desc()).limit(decisions_limit)
            )
        )
        session.expunge_all()
    return rounds, decisions
