"""What a model version was trained on, for the memorisation checks (verbatim, near-duplicate, novelty).

    ModelVersion ─run_id→ Run ─datasets→ RunDataset (role train | feedback) → DatasetVersion → Parquet
         └─parent_id→ the version it was fine-tuned from (its data is in the weights too)

`training_datasets(context)` follows that chain once per generation job (memoised in
`context.cache`); `training_records(context, modality)` reads the train split of each
dataset version, in catalog order. Feedback datasets count: the model was trained on them
as much as on the first dataset. A model with no recorded dataset (e.g. registered from
outside genloop) gives an empty list; the checks say they had nothing to compare with.

Records a model made itself — samples in a reward-shaped set (`generated:VERSION`) and
published items fed back as likes or dislikes (`feedback:like|dislike|gallery`) — are left
out: the memorisation checks protect what people made and licensed, and a challenger that
resembles the outputs people liked is what the fine-tune is for. Human edits
(`feedback:edit`) are people's text and stay in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from genloop.catalog.models import ModelVersion, Run
from genloop.data.datasets import DatasetHandle, open_dataset_version
from genloop.data.record import Record
from genloop.errors import DataError, NotFoundError
from genloop.generate.safety.registry import SafetyContext
from genloop.models.versions import LIST_HINT, resolve_model_version

MODEL_MADE_SOURCES = ("generated:", "feedback:like", "feedback:dislike", "feedback:gallery")
_DATASETS_KEY = "training-datasets:{}"
_CONFIG_KEY = "model-config:{}"


def _lineage(context: SafetyContext) -> list[tuple[str, str, list[str]]]:
    """(version id, path, [dataset version id …]) of the model version and each ancestor, nearest first."""
    chain: list[tuple[str, str, list[str]]] = []
    catalog = context.require_catalog()
    version_id: str | None = resolve_model_version(catalog, context.model_version_id)
    with catalog.session() as session:
        while version_id is not None and all(version_id != seen for seen, _, _ in chain):
            row = session.get(ModelVersion, version_id)
            if row is None:
                raise NotFoundError(f"model version {version_id!r} is not in the catalog", hint=LIST_HINT)
            run = session.get(Run, row.run_id)
            datasets = [use.dataset_version_id for use in run.datasets] if run is not None else []
            chain.append((row.id, row.path, datasets))
            version_id = row.parent_id
    return chain


def training_datasets(context: SafetyContext) -> list[DatasetHandle]:
    """Every dataset version the model version (or an ancestor it was fine-tuned from) trained on."""
    key = _DATASETS_KEY.format(context.model_version_id)
    if key not in context.cache:
        ids: list[str] = []
        for _, _, used in _lineage(context):
            ids.extend(d for d in used if d not in ids)
        catalog = context.require_catalog()
        context.cache[key] = [open_dataset_version(context.workspace, catalog, d) for d in ids]
    datasets: list[DatasetHandle] = context.cache[key]
    return datasets


def model_made(record: Record) -> bool:
    """True for a record genloop generated (a sample or a published item fed back)."""
    return record.source.startswith(MODEL_MADE_SOURCES)


def training_records(context: SafetyContext, modality: str) -> Iterator[Record]:
    """The train-split records people made, of every training dataset; a DataError names one of
    another modality."""
    for dataset in training_datasets(context):
        for record in dataset.iter_records("train"):
            if model_made(record):
                continue
            if record.modality != modality:
                raise DataError(
                    f"dataset {dataset.id}: {record.where} is {record.modality}, "
                    f"but model {context.model_version_id} generates {modality}",
                    hint="check the model version named in the generation request",
                )
            yield record


def model_config(context: SafetyContext) -> dict[str, Any]:
    """The model version's config.json (image_size, channels, ...), read once per job."""
    key = _CONFIG_KEY.format(context.model_version_id)
    if key not in context.cache:
        version_id, stored_path, _ = _lineage(context)[0]
        path = context.workspace.artifact(stored_path) / "config.json"
        if not path.is_file():
            raise NotFoundError(
                f"model version {version_id}: {path} is missing",
                hint="the files under .genloop/models were moved or deleted; retrain with `genloop train`",
            )
        context.cache[key] = json.loads(path.read_text(encoding="utf-8"))
    config: dict[str, Any] = context.cache[key]
    return config


def describe(datasets: list[DatasetHandle]) -> str:
    """ "dataset a1b2c3 (digits)" / "2 datasets (…)" for reasons."""
    names = ", ".join(f"{d.id[:12]} ({d.name})" for d in datasets)
    return f"dataset {names}" if len(datasets) == 1 else f"{len(datasets)} datasets ({names})"
