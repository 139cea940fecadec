"""The labelling help the annotate stage runs before `require-label`: rules, then auto-labels.

`plan_assist` makes one pass over the dataset version (only when rules or
auto-labelling are configured): it applies the rules, so rule-labelled records
count as labelled neighbours, and computes nearest-neighbour suggestions for the
records still unlabelled. The returned steps are then run by the stage's pipeline
like any other; the low-confidence records go to the human queue (`enqueue_unsure`)
against the version being annotated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genloop.catalog import Catalog
from genloop.config import AnnotateConfig
from genloop.data.annotate.auto import AutoLabeler, suggest_labels
from genloop.data.annotate.embeddings import text_embedding_method
from genloop.data.annotate.queue import enqueue
from genloop.data.annotate.rules import RuleLabeler
from genloop.data.datasets import DatasetHandle
from genloop.data.pipeline import Step


@dataclass
class LabelAssist:
    steps: list[Step] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)
    """Labels the steps will give (so the stage's class list includes rule labels)."""
    auto: AutoLabeler | None = None
    text_embedding: str | None = None

    def summary(self) -> dict[str, Any]:
        """For the manifest: how many auto labels were applied and how many queued."""
        if self.auto is None:
            return {}
        unsure = len(self.auto.low_confidence())
        return {
            "auto_label": {
                "suggested": len(self.auto.suggestions),
                "applied": len(self.auto.suggestions) - unsure,
                "queued": unsure,
                "min_confidence": self.auto.min_confidence,
                "text_embedding": self.text_embedding,
            }
        }


def plan_assist(dataset: DatasetHandle, cfg: AnnotateConfig) -> LabelAssist:
    """The rule and auto-label steps for `dataset` (none when neither is configured)."""
    assist = LabelAssist()
    rules = RuleLabeler(cfg.rules, override=cfg.rules_override) if cfg.rules else None
    if rules is None and not cfg.auto_label:
        return assist
    records = []
    for record in dataset.iter_records():
        if rules is not None:
            record = rules.label(record)
            if "rule" in record.meta and record.label:
                assist.labels.add(record.label)
        if cfg.auto_label:
            records.append(record)
    if rules is not None:
        assist.steps.append(rules)
    if cfg.auto_label:
        assist.text_embedding = text_embedding_method(cfg.auto_label_text_embedding)
        suggestions = suggest_labels(
            records, k=cfg.auto_label_k, text_embedding=cfg.auto_label_text_embedding
        )
        assist.auto = AutoLabeler(suggestions, min_confidence=cfg.auto_label_min_confidence)
        assist.steps.append(assist.auto)
    return assist


def enqueue_unsure(catalog: Catalog, dataset: DatasetHandle, assist: LabelAssist, cfg: AnnotateConfig) -> int:
    """Queue the records whose auto label was too unsure to apply; returns how many tasks are new."""
    if assist.auto is None:
        return 0
    unsure = assist.auto.low_confidence()
    return enqueue(catalog, dataset.id, unsure.items(), annotators=cfg.annotators_per_task)
