"""The "liked" recipe: fine-tune a challenger from the champion on what people liked.

    liked items ──► feedback dataset version ─┐
    champion's training data ─────────────────┼─► fine-tune from the champion ─► challenger
                                              │      (liked items repeated `liked_weight`×,
                                              │       the original data holds quality)
    evaluate champion and challenger on the same held-out data ─► the comparison

This is one recipe of several: `genloop improve` and each `genloop loop` round go through
`improve/dispatch.py` (`improve_model`), which picks the recipe from `[improve].recipe`
and the champion's family — this one, the reward-model fine-tunes of images
(`improve/image_recipes.py`) or SFT / DPO / KTO of text and music (`improve/text_recipes.py`),
all on the weighted preference data of `improve/feedback_data.py`.

Promotion stays a decision (`genloop models promote`, checked by the [[gates]]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import Evaluation, ModelVersion, RunDataset
from genloop.config import GenloopConfig
from genloop.data.datasets import DatasetHandle, open_dataset_version
from genloop.errors import DataError, NotFoundError
from genloop.evaluate import evaluate_model
from genloop.improve.feedback_data import build_feedback_dataset
from genloop.models.versions import resolve_model_version
from genloop.train import train_model
from genloop.workspace import Workspace


@dataclass(frozen=True)
class ImproveResult:
    champion: str
    challenger: str
    feedback_dataset: str
    liked: int
    feedback_events: int
    champion_metrics: dict[str, Any]
    challenger_metrics: dict[str, Any]


def training_dataset_id(catalog: Catalog, version_id: str) -> str:
    with catalog.session() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise NotFoundError(f"model version {version_id!r} is not in the catalog")
        row = session.scalars(
            select(RunDataset).where(RunDataset.run_id == version.run_id, RunDataset.role == "train")
        ).first()
        if row is None:
            raise DataError(f"model version {version_id} has no training dataset in the catalog")
        return row.dataset_version_id


_training_dataset_id = training_dataset_id  # the earlier private name


def latest_metrics(catalog: Catalog, version_id: str, dataset_id: str) -> dict[str, Any] | None:
    """The newest stored evaluation of a model version on a dataset version, if any."""
    with catalog.session() as session:
        row = session.scalars(
            select(Evaluation)
            .where(Evaluation.model_version_id == version_id, Evaluation.dataset_version_id == dataset_id)
            .order_by(Evaluation.created_at.desc())
        ).first()
        return dict(row.metrics) if row else None


def evaluate_pair(
    workspace: Workspace,
    catalog: Catalog,
    config: GenloopConfig,
    champion: str,
    challenger: str,
    dataset: DatasetHandle,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Champion and challenger metrics on the same dataset (the champion's stored ones when it has some)."""
    champion_metrics = (
        latest_metrics(catalog, champion, dataset.id)
        or evaluate_model(workspace, catalog, champion, dataset, config.evaluate).metrics
    )
    challenger_metrics = evaluate_model(workspace, catalog, challenger, dataset, config.evaluate).metrics
    return champion_metrics, challenger_metrics


def improve(
    workspace: Workspace, catalog: Catalog, config: GenloopConfig, *, evaluate: bool = True
) -> ImproveResult:
    """Fine-tune on liked items; `evaluate=False` skips the comparison (its metrics are then {})."""
    name = config.project.name
    champion = resolve_model_version(catalog, f"{name}@champion")
    feedback = build_feedback_dataset(workspace, catalog, name)
    if feedback.dataset is None or len(feedback.liked) < config.improve.min_likes:
        raise DataError(
            f"no liked items for model {name!r} yet ({feedback.events} feedback events)",
            hint="run `genloop serve`, open the gallery and like the images you want more of",
        )
    base = open_dataset_version(workspace, catalog, training_dataset_id(catalog, champion))
    train_cfg = config.train.model_copy(
        update={"epochs": config.improve.epochs, "learning_rate": config.improve.learning_rate}
    )
    trained = train_model(
        workspace,
        catalog,
        base,
        train_cfg,
        model_name=name,
        init_from=champion,
        extra_datasets=[(feedback.dataset, "feedback", config.improve.liked_weight)],
        alias="challenger",
        feedback_count=feedback.events,
    )
    champion_metrics, challenger_metrics = (
        evaluate_pair(workspace, catalog, config, champion, trained.model_version_id, base)
        if evaluate
        else ({}, {})
    )
    return ImproveResult(
        champion,
        trained.model_version_id,
        feedback.dataset.id,
        len(feedback.liked),
        feedback.events,
        champion_metrics,
        challenger_metrics,
    )
