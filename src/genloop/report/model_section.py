"""The report's model part: per model name, its versions (loss curves, newest sample),
its evaluation metrics across versions with the gates, and its feedback over time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import (
    ContentItem,
    Evaluation,
    FeedbackEvent,
    ModelAlias,
    ModelVersion,
    Publication,
    RunMetric,
)
from genloop.config import GenloopConfig
from genloop.errors import NotFoundError
from genloop.feedback.analytics import ModelLikeRate, like_rate_by_model_version
from genloop.report.plots import feedback_chart, loss_chart, metric_chart
from genloop.report.samples import Sample, newest_sample
from genloop.workspace import Workspace

Gates = dict[str, list[tuple[str, float]]]  # metric → [(">=" or "<=", threshold)]


@dataclass
class VersionSection:
    id: str
    version: int
    family: str
    run_id: str
    run_status: str
    parent: str | None
    feedback_count: int
    created: str
    aliases: list[str]
    loss_chart: str | None
    sample: Sample | None
    metrics: dict[str, Any]


@dataclass
class ModelSection:
    name: str
    versions: list[VersionSection]
    metric_charts: list[tuple[str, str]] = field(default_factory=list)  # (metric, PNG data: URI)
    like_rates: list[ModelLikeRate] = field(default_factory=list)
    feedback_chart: str | None = None

    @property
    def votes(self) -> int:
        return sum(rate.votes for rate in self.like_rates)


def gates_from_config(config: GenloopConfig) -> Gates:
    """The absolute thresholds of `[[gates]]` (`at_least` → ">=", `at_most` → "<="), per metric.

    `no_worse_than_champion` gates move with the champion, so they are not drawn as a line.
    """
    gates: Gates = defaultdict(list)
    for gate in config.gates:
        if gate.value is None:
            continue
        gates[gate.metric].append((">=" if gate.rule == "at_least" else "<=", float(gate.value)))
    return dict(gates)


def model_names(catalog: Catalog) -> list[str]:
    with catalog.session() as session:
        return sorted(set(session.scalars(select(ModelVersion.name))))


def _loss_chart(catalog: Catalog, run_id: str, title: str) -> str | None:
    query = (
        select(RunMetric.name, RunMetric.step, RunMetric.value)
        .where(RunMetric.run_id == run_id, RunMetric.name.contains("loss"))
        .order_by(RunMetric.name, RunMetric.step, RunMetric.id)
    )
    series: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    with catalog.session() as session:
        for name, step, value in session.execute(query):
            series[name][0].append(step)
            series[name][1].append(value)
    return loss_chart(series, title=title) if series else None


def _version(workspace: Workspace, catalog: Catalog, row: ModelVersion, aliases: list[str]) -> VersionSection:
    with catalog.session() as session:
        evaluation = session.scalars(
            select(Evaluation)
            .where(Evaluation.model_version_id == row.id)
            .order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
        ).first()
    return VersionSection(
        id=row.id,
        version=row.version,
        family=row.family,
        run_id=row.run_id,
        run_status=row.run.status,
        parent=row.parent_id,
        feedback_count=row.feedback_count,
        created=f"{row.created_at:%Y-%m-%d %H:%M}",
        aliases=aliases,
        loss_chart=_loss_chart(catalog, row.run_id, f"{row.id}: training loss"),
        sample=newest_sample(workspace.artifact(row.run.path) / "samples"),
        metrics=dict(evaluation.metrics) if evaluation else {},
    )


def _scalar(value: Any) -> bool:
    return isinstance(value, float)  # ints are counts (heldout_images, samples_per_class), not scores


def _metric_charts(versions: Sequence[VersionSection], gates: Gates) -> list[tuple[str, str]]:
    names = sorted({name for v in versions for name, value in v.metrics.items() if _scalar(value)})
    charts = []
    for name in names:
        points = [(v.version, float(v.metrics[name])) for v in versions if _scalar(v.metrics.get(name))]
        xs, ys = [x for x, _ in points], [y for _, y in points]
        charts.append((name, metric_chart(name, xs, ys, gates.get(name, []))))
    return charts


def _feedback_chart(catalog: Catalog, name: str) -> str | None:
    query = (
        select(ModelVersion.id, FeedbackEvent.created_at, FeedbackEvent.kind)
        .join(ContentItem, ContentItem.model_version_id == ModelVersion.id)
        .join(Publication, Publication.content_item_id == ContentItem.id)
        .join(FeedbackEvent, FeedbackEvent.publication_id == Publication.id)
        .where(ModelVersion.name == name, FeedbackEvent.kind.in_(("like", "dislike")))
        .order_by(FeedbackEvent.created_at, FeedbackEvent.id)
    )
    events: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    with catalog.session() as session:
        for version_id, when, kind in session.execute(query):
            events[version_id].append((when, kind))
    return feedback_chart(events, title=f"{name}: feedback over time") if events else None


def model_sections(
    workspace: Workspace, catalog: Catalog, *, only: str | None = None, gates: Gates | None = None
) -> list[ModelSection]:
    """One section per model name (just `only` when given; an unknown name is a NotFoundError)."""
    names = model_names(catalog)
    if only is not None:
        if only not in names:
            known = ", ".join(names) if names else "none yet (run `genloop train` or `genloop run`)"
            raise NotFoundError(
                f"no model named {only!r}", hint=f"models in this workspace: {known}; drop --model for all"
            )
        names = [only]
    rates = like_rate_by_model_version(catalog)
    sections = []
    for name in names:
        with catalog.session() as session:
            rows = session.scalars(
                select(ModelVersion).where(ModelVersion.name == name).order_by(ModelVersion.version)
            ).all()
            for row in rows:
                _ = row.run  # load the run while the session is open
            aliases: dict[str, list[str]] = defaultdict(list)
            for alias in session.scalars(select(ModelAlias).where(ModelAlias.name == name)):
                aliases[alias.model_version_id].append(alias.alias)
        versions = [_version(workspace, catalog, row, sorted(aliases[row.id])) for row in rows]
        section = ModelSection(name, versions[::-1])  # newest first on the page
        section.metric_charts = _metric_charts(versions, gates or {})
        section.like_rates = [rate for rate in rates if rate.name == name]
        if section.votes:
            section.feedback_chart = _feedback_chart(catalog, name)
        sections.append(section)
    return sections
