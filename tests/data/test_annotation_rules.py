"""Keyword/regex labelling rules: first match wins, conflicts noted, override, config errors."""

from __future__ import annotations

import pytest

from genloop.catalog import open_catalog
from genloop.config import AnnotateConfig, LabelRule, parse_config
from genloop.data.annotate import annotate
from genloop.data.annotate.rules import RuleLabeler, conflict_summary
from genloop.data.datasets import write_dataset_version
from genloop.data.record import Record
from genloop.errors import ConfigError
from genloop.workspace import Workspace

TICKETS = [
    ("我要退款，东西坏了", None),
    ("Please refund my order, it arrived broken", None),
    ("How do I reset my password?", None),
    ("退货流程是什么？我想投诉快递", None),
    ("The courier was rude, I want to complain and get a refund", None),
    ("Great product, thanks!", "praise"),
]
RULES = [
    LabelRule(label="refund", pattern=r"退款|refund"),
    LabelRule(label="complaint", pattern=r"投诉|complain"),
    LabelRule(label="account", pattern=r"password|密码"),
]


def text_record(text: str, label: str | None) -> Record:
    return Record.create(text.encode(), modality="text", label=label, source="tickets", license="CC0-1.0")


def test_first_matching_rule_wins_and_conflicts_are_noted() -> None:
    labeler = RuleLabeler(RULES)
    output = labeler([text_record(text, label) for text, label in TICKETS])
    labels = [r.label for r in output.kept]
    assert labels == ["refund", "refund", "account", "complaint", "refund", "praise"]
    courier = output.kept[4]
    assert courier.meta["rule"] == {"label": "refund", "pattern": r"退款|refund", "field": "text"}
    assert courier.meta["rule_conflicts"] == ["complaint"]
    assert conflict_summary(output.kept) == {"refund -> complaint": 1}
    assert output.counters == {
        "rule:refund": 3,
        "rule:account": 1,
        "rule:complaint": 1,
        "conflict:refund->complaint": 1,
    }


def test_rules_leave_labelled_records_alone_unless_override() -> None:
    praise = text_record("Great product but I want a refund", "praise")
    assert RuleLabeler(RULES).label(praise) is praise
    assert RuleLabeler(RULES, override=True).label(praise).label == "refund"


def test_rules_on_path_and_meta_fields() -> None:
    image = Record.create(
        b"png", modality="image", label=None, source="f", license="MIT", meta={"path": "shots/Cat_01.png"}
    )
    rules = [LabelRule(label="cat", pattern=r"/cat_", field="path")]
    assert RuleLabeler(rules).label(image).label == "cat"  # ignore_case by default
    strict = [LabelRule(label="cat", pattern=r"/cat_", field="path", ignore_case=False)]
    assert RuleLabeler(strict).label(image).label is None
    assert RuleLabeler([LabelRule(label="cat", pattern="cat")]).label(image).label is None  # no text


def test_annotate_stage_applies_rules_and_counts_them(sqlite_workspace: Workspace) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    records = [text_record(text, label) for text, label in TICKETS]
    dataset = write_dataset_version(sqlite_workspace, catalog, records, name="tickets", stage="clean")
    result = annotate(sqlite_workspace, catalog, dataset, AnnotateConfig(rules=RULES))
    assert result.classes == ["account", "complaint", "praise", "refund"]
    assert result.dataset.manifest["labels"] == {"account": 1, "complaint": 1, "praise": 1, "refund": 3}
    rules_step = next(step for step in result.report["steps"] if step["name"] == "rules")
    assert rules_step["counters"]["conflict:refund->complaint"] == 1


def test_bad_rules_are_config_errors_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"annotate.*rules.*pattern.*not a valid regular expression"):
        parse_config({"annotate": {"rules": [{"label": "x", "pattern": "(unclosed"}]}})
    with pytest.raises(ConfigError, match=r"unknown field 'body'"):
        parse_config({"annotate": {"rules": [{"label": "x", "pattern": "a", "field": "body"}]}})
    cfg = parse_config({"annotate": {"rules": [{"label": "refund", "pattern": "退款|refund"}]}})
    assert cfg.annotate.rules[0].field == "text"
