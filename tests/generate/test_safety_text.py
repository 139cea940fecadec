"""Text safety checks on a real tiny workspace: blocklist, PII, verbatim copies, profanity (extra)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from genloop.catalog import Catalog, open_catalog
from genloop.data.datasets import DatasetHandle
from genloop.errors import GenloopError, MissingDependencyError
from genloop.generate.artifact import Artifact
from genloop.generate.safety.registry import SafetyContext, build_check, build_checks
from genloop.models.versions import register_model_version
from genloop.train.runs import DatasetUse, RunRecorder, run_id_for
from genloop.workspace import Workspace
from support.text import fortune_texts, text_dataset


def register_trained_on(
    workspace: Workspace,
    catalog: Catalog,
    datasets: list[DatasetHandle],
    *,
    name: str = "writer",
    parent: str | None = None,
    config: dict[str, object] | None = None,
) -> str:
    """A model version whose run trained on `datasets`, recorded as the train stage records one."""
    config = config or {"block_size": 32}
    uses = [DatasetUse(datasets[0]), *(DatasetUse(d, role="feedback") for d in datasets[1:])]
    run_id = run_id_for(family="gpt", model_name=name, config=config, uses=uses, init_from=parent)
    RunRecorder(catalog, run_id).start(
        model_name=name, family="gpt", config=config, parent_model_version_id=parent, path="runs/x", uses=uses
    )
    weights = workspace.path("staging-weights", run_id)
    weights.mkdir(parents=True)
    (weights / "config.json").write_text(json.dumps({"family": "gpt", **config}), encoding="utf-8")
    return register_model_version(
        workspace, catalog, name=name, family="gpt", run_id=run_id, weights_dir=weights, parent_id=parent
    )


def text(body: str) -> Artifact:
    return Artifact(content_id="c1", modality="text", data=body, format="txt")


@pytest.fixture
def context(sqlite_workspace: Workspace) -> SafetyContext:
    catalog = open_catalog(sqlite_workspace.database_url)
    texts = fortune_texts(3000) + fortune_texts(1500, name="tang300")
    dataset = text_dataset(sqlite_workspace, catalog, texts, test_fraction=0.3)
    version = register_trained_on(sqlite_workspace, catalog, [dataset])
    return SafetyContext(sqlite_workspace, catalog, version)


def split_texts(context: SafetyContext, split: str) -> list[str]:
    from genloop.generate.safety.training_data import training_datasets

    return [r.payload.decode() for r in training_datasets(context)[0].iter_records(split)]


# ---- blocklist -----------------------------------------------------------------------------------


def test_blocklist_blocks_planted_english_and_chinese_terms(context: SafetyContext) -> None:
    check = build_check("blocklist", "text")
    english = check.check(text("What the FUCKING hell is this?"), context)
    assert not english.passed and english.check == "blocklist"
    assert "'fuck*' at char 9" in english.reason and english.details["hits"][0]["text"] == "FUCKING"
    chinese = check.check(text("你这个傻逼，滚。"), context)
    assert not chinese.passed and "'傻逼' at char 3" in chinese.reason
    traditional = check.check(text("我操你媽"), context)  # matched after 繁 → 简
    assert not traditional.passed and "操你妈" in traditional.reason
    full_width = check.check(text("ｆｕｃｋ off"), context)
    assert not full_width.passed and full_width.score == 1.0


def test_blocklist_passes_clean_text_with_look_alike_characters(context: SafetyContext) -> None:
    check = build_check("blocklist", "text")
    lookalikes = [
        "他妈妈的工作是操作机器，从不逼迫别人；印度支那的杂种优势研究。",  # 他妈的 / 操 / 逼 / 支那 / 杂种
        "An assassin from Scunthorpe ate shiitake at Cockburn's.",
    ]
    poems = [t for t in split_texts(context, "train") if "作者" in t]  # Tang poems: clean
    assert len(poems) >= 5
    for body in lookalikes + poems:
        verdict = check.check(text(body), context)
        assert verdict.passed, (body, verdict.reason)
        assert verdict.reason == "no blocked terms" and verdict.details["hits"] == []


def test_blocklist_takes_words_files_and_languages(context: SafetyContext, tmp_path: Path) -> None:
    listed = tmp_path / "ours.txt"
    listed.write_text("# team list\nfrobnicate\n糟糕透顶\n", encoding="utf-8")
    check = build_check(
        {"name": "blocklist", "languages": ["en"], "words": ["Wibble"], "files": [str(listed)]}, "text"
    )
    assert not check.check(text("Please FROBNICATE it."), context).passed
    assert not check.check(text("this is wibble"), context).passed
    assert check.check(text("wibbles and frobnicated"), context).passed  # whole words only
    assert not check.check(text("真是糟糕透顶"), context).passed
    assert check.check(text("你这个傻逼"), context).passed  # the zh built-in list is not on
    with pytest.raises(GenloopError, match=r"missing\.txt does not exist"):
        build_check({"name": "blocklist", "files": [str(tmp_path / "missing.txt")]}, "text")
    with pytest.raises(GenloopError, match="would block every word"):
        build_check({"name": "blocklist", "words": ["*"]}, "text")
    with pytest.raises(GenloopError, match="no built-in blocklist for language 'fr'"):
        build_check({"name": "blocklist", "languages": ["fr"]}, "text")


# ---- PII -----------------------------------------------------------------------------------------


def test_pii_blocks_phone_and_email_without_repeating_them(context: SafetyContext) -> None:
    verdict = build_check("pii", "text").check(
        text("联系我：13812345678，或者写信到 li.lei@example.com。"), context
    )
    assert not verdict.passed and verdict.details["kinds"] == {"PHONE": 1, "EMAIL": 1}
    assert "EMAIL ×1" in verdict.reason and "PHONE ×1" in verdict.reason
    assert "13812345678" not in json.dumps(verdict.to_json()) and "example.com" not in verdict.reason
    clean = build_check("pii", "text").check(
        text("Order 20240501 shipped on 2024-05-01 for $12.50."), context
    )
    assert clean.passed and clean.reason == "no PII found"
    only_email = build_check({"name": "pii", "kinds": ["EMAIL"]}, "text")
    assert only_email.check(text("call 13812345678"), context).passed
    with pytest.raises(GenloopError, match="unknown PII kinds"):
        build_check({"name": "pii", "kinds": ["SSN"]}, "text")


# ---- verbatim ------------------------------------------------------------------------------------


def test_verbatim_blocks_a_copied_training_text_and_passes_held_out_text(context: SafetyContext) -> None:
    check = build_check("verbatim", "text")
    train, held_out = split_texts(context, "train"), split_texts(context, "test")
    english = max((t for t in train if not any("\u4e00" <= c <= "\u9fff" for c in t)), key=len)
    copied = check.check(text(f"As they say: {english} And so on."), context)
    assert not copied.passed and copied.score is not None and copied.score >= len(english.split())
    assert copied.reason.startswith(f"copies {int(copied.score)} tokens verbatim")
    for body in held_out:  # real text the model never saw: no copy of 12 tokens
        verdict = check.check(text(body), context)
        assert verdict.passed, (body, verdict.reason)
    assert len([key for key in context.cache if key.startswith("verbatim-index")]) == 1  # built once


def test_verbatim_counts_chinese_characters_as_tokens(context: SafetyContext) -> None:
    check = build_check({"name": "verbatim", "min_tokens": 12}, "text")
    poem = next(t for t in split_texts(context, "train") if "，" in t and "作者" in t)
    line = poem.splitlines()[-2] + poem.splitlines()[-1]  # two 5/7-character lines: 12+ tokens
    verdict = check.check(text(f"今天读到：{line}真好。"), context)
    assert not verdict.passed, verdict.reason
    import opencc  # a copy converted to traditional characters is still a copy

    assert not check.check(text(opencc.OpenCC("s2t").convert(line)), context).passed
    assert check.check(text(line[:7] + "今天天气晴朗我们去公园散步"), context).passed  # 7 shared tokens


def test_verbatim_sees_the_data_of_the_version_a_model_was_fine_tuned_from(
    sqlite_workspace: Workspace,
) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    first = text_dataset(sqlite_workspace, catalog, fortune_texts(1500), name="first", test_fraction=0.0)
    second = text_dataset(
        sqlite_workspace, catalog, fortune_texts(1200, name="tang300"), name="second", test_fraction=0.0
    )
    parent = register_trained_on(sqlite_workspace, catalog, [first])
    child = register_trained_on(sqlite_workspace, catalog, [second], parent=parent)
    context = SafetyContext(sqlite_workspace, catalog, child)
    copied = first.records()[0].payload.decode()
    verdict = build_check("verbatim", "text").check(text(copied), context)
    assert not verdict.passed and "2 datasets" in verdict.details["training"]


def test_verbatim_without_recorded_training_text_says_not_checked(sqlite_workspace: Workspace) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    empty = text_dataset(sqlite_workspace, catalog, ["only held out"], test_fraction=1.0)
    context = SafetyContext(
        sqlite_workspace, catalog, register_trained_on(sqlite_workspace, catalog, [empty])
    )
    verdict = build_check("verbatim", "text").check(text("anything at all"), context)
    assert verdict.passed and verdict.reason.startswith(
        "not checked: model writer-v1 has no recorded training text"
    )
    with pytest.raises(GenloopError, match="need 1 ≤ n ≤ min_tokens"):
        build_check({"name": "verbatim", "min_tokens": 4}, "text")


# ---- defaults and the profanity extra ----------------------------------------------------------------


def test_default_text_checks_are_the_cheap_ones(context: SafetyContext) -> None:
    checks = build_checks(None, "text")
    assert [c.name for c in checks] == ["blocklist", "pii", "verbatim"]
    verdicts = [c.check(text("A quiet morning by the lake."), context) for c in checks]
    assert all(v.passed for v in verdicts), [v.reason for v in verdicts]


def test_profanity_classifier_flags_offensive_sentences(context: SafetyContext) -> None:
    pytest.importorskip("profanity_check")
    check = build_check({"name": "profanity", "threshold": 0.5}, "text")
    offensive = check.check(text("The weather is nice. You are a stupid fucking idiot!"), context)
    assert not offensive.passed and offensive.score is not None and offensive.score > 0.9
    assert "sentence 2, at char 21" in offensive.reason
    clean = check.check(text("The weather is nice. Let us walk to the library together."), context)
    assert clean.passed and clean.reason.startswith("no offensive language")


def test_profanity_without_the_package_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "profanity_check", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match="alt-profanity-check") as raised:
        build_check("profanity", "text")
    assert raised.value.hint is not None and "pip install alt-profanity-check" in raised.value.hint
