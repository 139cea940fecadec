"""Keyword/regex labelling rules (`[[annotate.rules]]` in genloop.toml).

Each rule searches one field of a record (the text payload, the file path, the
source, or a `meta` key) with a regular expression. Rules are tried in order and
the **first match wins**; when later rules match too and name *other* labels, the
record keeps the first label and lists the others in `meta["rule_conflicts"]`, so
ambiguous rules can be found and fixed (`conflict_summary`).

By default rules label only records without a label; with `rules_override = true`
they relabel labelled records too. A record labelled by a rule carries
`meta["rule"] = {"label", "pattern", "field"}`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from genloop.config import LabelRule
from genloop.data.pipeline import StepOutput
from genloop.data.record import Record


@dataclass(frozen=True)
class CompiledRule:
    label: str
    pattern: str
    field: str
    regex: re.Pattern[str]

    @classmethod
    def of(cls, rule: LabelRule) -> CompiledRule:
        flags = re.IGNORECASE if rule.ignore_case else 0
        return cls(rule.label, rule.pattern, rule.field, re.compile(rule.pattern, flags))


def field_text(record: Record, field: str) -> str | None:
    """The text a rule looks at, or None when the record has no such field (an image's `text`)."""
    if field == "text":
        return record.payload.decode("utf-8", errors="replace") if record.modality == "text" else None
    if field == "path":
        value = record.meta.get("path")
    elif field == "source":
        value = record.source
    elif field.startswith("meta."):
        value = record.meta.get(field.removeprefix("meta."))
    else:
        return None
    return None if value is None else str(value)


def matching_labels(record: Record, rules: Sequence[CompiledRule]) -> list[CompiledRule]:
    """Every rule that matches `record`, in rule order."""
    matched = []
    for rule in rules:
        text = field_text(record, rule.field)
        if text is not None and rule.regex.search(text):
            matched.append(rule)
    return matched


class RuleLabeler:
    """A data step: label records by the first matching rule; drops nothing."""

    name = "rules"
    parallel_safe = True  # a record's label depends on that record and the rules only

    def __init__(self, rules: Iterable[LabelRule], *, override: bool = False) -> None:
        self.rules = [CompiledRule.of(rule) for rule in rules]  # fields checked by LabelRule
        self.override = override

    @property
    def labels(self) -> set[str]:
        return {rule.label for rule in self.rules}

    def __call__(self, batch: list[Record]) -> StepOutput:
        """Label the batch; the report counts `rule:LABEL` and `conflict:FIRST->OTHER`."""
        kept = [self.label(record) for record in batch]
        counters: Counter[str] = Counter()
        for before, after in zip(batch, kept, strict=True):
            if after is not before:
                counters[f"rule:{after.label}"] += 1
                for other in after.meta.get("rule_conflicts", []):
                    counters[f"conflict:{after.label}->{other}"] += 1
        return StepOutput(kept=kept, counters=dict(counters))

    def label(self, record: Record) -> Record:
        if record.label and not self.override:
            return record
        matched = matching_labels(record, self.rules)
        if not matched:
            return record
        first = matched[0]
        meta = {**record.meta, "rule": {"label": first.label, "pattern": first.pattern, "field": first.field}}
        others = sorted({rule.label for rule in matched[1:]} - {first.label})
        if others:
            meta["rule_conflicts"] = others
        return record.with_changes(label=first.label, meta=meta)


def conflict_summary(records: Iterable[Record]) -> dict[str, int]:
    """How often each `first -> other` conflict occurred: {"refund -> complaint": 3}."""
    counts: Counter[str] = Counter()
    for record in records:
        for other in record.meta.get("rule_conflicts", []):
            counts[f"{record.meta['rule']['label']} -> {other}"] += 1
    return dict(counts.most_common())
