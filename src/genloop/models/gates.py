"""Promotion gates: the rules (`[[gates]]` in genloop.toml) a version must pass to take an alias.

Each gate reads one metric of the candidate's latest evaluation and compares it with a
fixed threshold or with the current champion's evaluation on the same dataset:

    no_worse_than_champion, higher_is_better:  candidate >= champion - tolerance * |champion|
    no_worse_than_champion, lower_is_better:   candidate <= champion + tolerance * |champion|
    at_least value / at_most value:            candidate >= value / candidate <= value

`|champion|` keeps the tolerance pointing the right way for negative metrics (an ELBO of
-120 with 5 % may drop to -126). A metric that is missing, not a number, or not finite
fails its gate: a gate that cannot be checked must not let a version through. The
champion is compared on the candidate's evaluation dataset only, so the numbers compared
were measured the same way.

`check_gates` returns one `GateResult` per applicable gate; `versions.promote` raises
`GateError` (naming each failing rule with its numbers) unless forced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import Evaluation, ModelAlias, ModelVersion
from genloop.config import GateConfig
from genloop.errors import GenloopError, NotFoundError

CHAMPION = "champion"
EVALUATE_HINT = "evaluate it with `genloop evaluate` (or `genloop run`), then promote again"


@dataclass(frozen=True)
class GateResult:
    metric: str
    rule: str
    passed: bool
    candidate: float | None
    """The candidate's value (None: missing)."""
    reference: float | None
    """The champion's value (no_worse_than_champion) or the threshold (at_least / at_most)."""
    bound: float | None
    """What the candidate had to reach: the reference with the tolerance applied."""
    message: str
    """Starts with the metric: `conditional_accuracy 0.71 < champion 0.86 − 5 % (0.817)`."""
    needs_evaluation: bool = False
    """Failed because an evaluation or metric is missing (the fix is `genloop evaluate`)."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class GateError(GenloopError):
    """A promotion refused by its gates; `results` holds every gate's outcome."""

    def __init__(self, version_id: str, alias: str, results: Sequence[GateResult]) -> None:
        failing = [r for r in results if not r.passed]
        lines = [f"{version_id} cannot become {alias}: {len(failing)} of {len(results)} gates fail"]
        lines += [f"  ✗ {r.message}" for r in failing]
        fixes = [EVALUATE_HINT] if any(r.needs_evaluation for r in failing) else []
        fixes.append("`--force --reason TEXT` promotes anyway (recorded in `genloop models history`)")
        super().__init__("\n".join(lines), hint="; ".join(fixes))
        self.version_id = version_id
        self.alias = alias
        self.results = list(results)


@dataclass(frozen=True)
class EvaluationMetrics:
    id: int
    model_version_id: str
    dataset_version_id: str
    metrics: dict[str, Any]


def latest_evaluation(
    catalog: Catalog, version_id: str, dataset_version_id: str | None = None
) -> EvaluationMetrics | None:
    """The version's newest evaluation (on `dataset_version_id`, when given), or None."""
    with catalog.session() as session:
        query = select(Evaluation).where(Evaluation.model_version_id == version_id)
        if dataset_version_id is not None:
            query = query.where(Evaluation.dataset_version_id == dataset_version_id)
        row = session.scalars(query.order_by(Evaluation.created_at.desc(), Evaluation.id.desc())).first()
        if row is None:
            return None
        return EvaluationMetrics(row.id, row.model_version_id, row.dataset_version_id, dict(row.metrics))


def metric_value(metrics: dict[str, Any], path: str) -> Any:
    """`metrics[path]`, or a dotted path into nested dicts; raises KeyError when absent."""
    if path in metrics:
        return metrics[path]
    value: Any = metrics
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def _num(value: float) -> str:
    return f"{value:.4g}"


def _pct(tolerance: float) -> str:
    return f"{tolerance * 100:.4g} %"


def _number(metrics: dict[str, Any], gate: GateConfig, whose: str) -> float | GateResult:
    """The gate's metric as a finite float, or a failing result saying why not."""

    def fail(message: str, needs_evaluation: bool = False) -> GateResult:
        return GateResult(gate.metric, gate.rule, False, None, None, None, message, needs_evaluation)

    try:
        value = metric_value(metrics, gate.metric)
    except KeyError:
        known = ", ".join(sorted(k for k, v in metrics.items() if _is_number(v))) or "none"
        message = f"{gate.metric} missing from {whose} (its numeric metrics: {known})"
        return fail(message, needs_evaluation=True)
    if not _is_number(value):
        return fail(f"{gate.metric} = {value!r} in {whose}: not a number")
    if not math.isfinite(float(value)):
        return fail(f"{gate.metric} = {value} in {whose}: not a finite number")
    return float(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _threshold(gate: GateConfig, value: float) -> GateResult:
    assert gate.value is not None  # GateConfig guarantees it for at_least / at_most
    if gate.rule == "at_least":
        passed, sign = value >= gate.value, ("≥" if value >= gate.value else "<")
    else:
        passed, sign = value <= gate.value, ("≤" if value <= gate.value else ">")
    message = f"{gate.metric} {_num(value)} {sign} {_num(gate.value)} ({gate.rule.replace('_', ' ')})"
    return GateResult(gate.metric, gate.rule, passed, value, gate.value, gate.value, message)


def _against_champion(gate: GateConfig, value: float, champion: float) -> GateResult:
    slack = gate.tolerance * abs(champion)
    if gate.direction == "higher_is_better":
        bound, passed = champion - slack, value >= champion - slack
        sign, op = ("≥" if passed else "<"), "−"
    else:
        bound, passed = champion + slack, value <= champion + slack
        sign, op = ("≤" if passed else ">"), "+"
    allowed = f" {op} {_pct(gate.tolerance)} ({_num(bound)})" if gate.tolerance else ""
    message = f"{gate.metric} {_num(value)} {sign} champion {_num(champion)}{allowed}"
    return GateResult(gate.metric, gate.rule, passed, value, champion, bound, message)


def applicable_gates(gates: Sequence[GateConfig], alias: str) -> list[GateConfig]:
    """The gates that guard moves of `alias` (by default only `champion` is gated)."""
    return [g for g in gates if alias in g.aliases]


def current_alias_target(catalog: Catalog, name: str, alias: str) -> str | None:
    with catalog.session() as session:
        row = session.get(ModelAlias, (name, alias))
        return row.model_version_id if row else None


def check_gates(
    catalog: Catalog,
    version_id: str,
    gates: Sequence[GateConfig],
    *,
    alias: str = CHAMPION,
    champion_id: str | None = None,
) -> list[GateResult]:
    """Check every gate that guards `alias` for `version_id`; one result per gate, in order.

    `champion_id` (None: the model's current champion) is what `no_worse_than_champion`
    compares with; a model without a champion passes those (nothing to be worse than).
    """
    with catalog.session() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise NotFoundError(f"no model version {version_id!r}", hint="`genloop models ls` lists them")
        name = version.name
    gates = applicable_gates(gates, alias)
    if not gates:
        return []
    if champion_id is None:
        champion_id = current_alias_target(catalog, name, CHAMPION)
    candidate = latest_evaluation(catalog, version_id)
    if candidate is None:
        return [
            GateResult(
                g.metric, g.rule, False, None, None, None, f"{g.metric}: {version_id} has no evaluation", True
            )
            for g in gates
        ]
    champion = latest_evaluation(catalog, champion_id, candidate.dataset_version_id) if champion_id else None
    whose = f"{version_id}'s latest evaluation"
    results = []
    for gate in gates:
        value = _number(candidate.metrics, gate, whose)
        if isinstance(value, GateResult):
            results.append(value)
        elif gate.rule != "no_worse_than_champion":
            results.append(_threshold(gate, value))
        elif champion_id is None or champion_id == version_id:
            reason = "no champion yet" if champion_id is None else f"{version_id} is the champion"
            results.append(
                GateResult(
                    gate.metric,
                    gate.rule,
                    True,
                    value,
                    None,
                    None,
                    f"{gate.metric}: {reason}, nothing to compare",
                )
            )
        elif champion is None:
            results.append(
                GateResult(
                    gate.metric,
                    gate.rule,
                    False,
                    value,
                    None,
                    None,
                    f"{gate.metric}: champion {champion_id} has no evaluation on dataset "
                    f"{candidate.dataset_version_id} (the one {version_id} was evaluated on)",
                    True,
                )
            )
        else:
            theirs_whose = f"champion {champion_id}'s evaluation on {champion.dataset_version_id}"
            theirs = _number(champion.metrics, gate, theirs_whose)
            results.append(
                theirs if isinstance(theirs, GateResult) else _against_champion(gate, value, theirs)
            )
    return results
