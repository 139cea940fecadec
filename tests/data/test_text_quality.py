"""Text cleaning past NFKC on real text: control characters, t2s, language, Gopher quality rules."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from genloop.config import CleanConfig, TextCleanConfig, parse_config
from genloop.data.clean import clean_steps
from genloop.data.pipeline import apply_steps, reason_kind
from genloop.data.record import Record
from genloop.data.steps.text_quality import (
    ControlCharacters,
    GopherQuality,
    IdentifyLanguage,
    SimplifyChinese,
    gopher_violation,
    is_cjk,
    text_quality_steps,
)
from genloop.errors import ConfigError

FORTUNES = Path("/usr/share/games/fortunes")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fortunes(name: str) -> list[str]:
    text = (FORTUNES / name).read_text(encoding="utf-8")
    return [ANSI.sub("", d).strip() for d in text.split("\n%\n") if d.strip()]


def text_record(text: str, path: str = "t.txt") -> Record:
    return Record.create(text.encode(), modality="text", label=None, source="test", license="MIT",
                         meta={"path": path})  # fmt: skip


def texts_of(records: list[Record]) -> list[str]:
    return [r.payload.decode() for r in records]


def test_control_and_invisible_characters_go_newline_and_tab_stay() -> None:
    dirty = "ad\x00min\u200b\tpass\x1b[0m\u202eword\n\x85next\u00adline\ufeff"
    kept = ControlCharacters()([text_record(dirty)]).kept
    assert texts_of(kept) == ["admin\tpass[0mword\nnextline"]


def test_traditional_to_simplified_only_when_asked() -> None:
    poem = "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"
    assert texts_of(SimplifyChinese()([text_record(poem)]).kept) == [
        "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
    ]
    assert "t2s" not in [s.name for s in text_quality_steps(TextCleanConfig())]
    assert "t2s" in [s.name for s in text_quality_steps(TextCleanConfig(simplify_chinese=True))]


def test_language_is_noted_and_filtered_on_real_english_and_chinese() -> None:
    english = [text_record(t, f"en#{i}") for i, t in enumerate(fortunes("computers")[:40]) if len(t) > 80]
    chinese = [text_record(t, f"zh#{i}") for i, t in enumerate(fortunes("tang300")[:20])]
    noted = IdentifyLanguage()(english + chinese).kept
    codes = [r.meta["lang"]["code"] for r in noted]
    assert codes[len(english) :] == ["zh"] * len(chinese)
    assert codes[: len(english)].count("en") >= 0.9 * len(english)
    assert all(0.0 <= r.meta["lang"]["score"] <= 1.0 for r in noted)
    only_en = IdentifyLanguage(["en"])(chinese[:2])
    assert not only_en.kept
    reason = only_en.dropped[0][1]
    assert re.fullmatch(r"language: zh \((0|1)\.\d\d\) not in \[en\]", reason)
    assert reason_kind(reason) == "language"


def test_zh_keeps_every_tang_poem_though_some_are_labelled_wu() -> None:
    poems = [text_record(t, f"zh#{i}") for i, t in enumerate(fortunes("tang300"))]
    assert "wuu" in {r.meta["lang"]["code"] for r in IdentifyLanguage()(poems).kept}
    assert len(IdentifyLanguage(["zh"])(poems).kept) == len(poems)


def test_unknown_language_code_is_an_error_that_says_what_to_use() -> None:
    with pytest.raises(ValueError, match=r"unknown code\(s\) \['english'\]; use ISO 639-1"):
        IdentifyLanguage(["en", "english"])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Go ahead... make my day.\n\t\t-- Dirty Harry", "symbol/word ratio 0.12 > 0.10"),
        ("I have a very strange feeling about this...\n\t\t-- Luke Skywalker", "ellipsis lines 0.50 > 0.30"),
        ("- buy now\n- cheap pills\n- best price\n* click here", "bullet lines 1.00 > 0.90"),
        ("a b c d e f g", "mean word length 1.0 not in 3..10"),
        ("1234 5678 9012 3456 7890 total", "alphabetic words 0.17 < 0.80"),
        ("spam spam spam\neggs and ham\nspam spam spam\nspam spam spam", "duplicate lines 0.50 > 0.30"),
        ("buy cheap watches buy cheap watches buy cheap watches today", "top 2-gram characters 0.48 > 0.20"),
    ],
)
def test_each_gopher_rule_names_itself_with_value_and_limit(text: str, reason: str) -> None:
    assert gopher_violation(text, TextCleanConfig()) == reason
    dropped = GopherQuality()([text_record(text)]).dropped
    assert dropped[0][1] == f"gopher: {reason}"
    assert reason_kind(dropped[0][1]) == "gopher: " + re.split(r" [\d.]+ ", reason, maxsplit=1)[0]


def test_most_real_fortunes_and_nearly_all_tang_poems_pass() -> None:
    cfg = TextCleanConfig()
    english = fortunes("computers")
    passed = sum(gopher_violation(t, cfg) is None for t in english) / len(english)
    assert passed > 0.85
    poems = fortunes("tang300") + fortunes("song100")
    assert all(is_cjk(p) for p in poems[:20])
    assert sum(gopher_violation(p, cfg) is None for p in poems) >= len(poems) - 3


def test_short_texts_are_judged_by_length_only() -> None:
    cfg = TextCleanConfig()
    assert [gopher_violation(t, cfg) for t in ("from Notepad", "with a BOM", "Orz", "#1 !!!")] == [None] * 4
    assert gopher_violation("Orz", TextCleanConfig(min_words=3)) == "words 1 < 3"
    assert (
        gopher_violation("#1 #2 #3 #4 #5 #6", TextCleanConfig(min_mean_word_length=1))
        == "symbol/word ratio 1.00 > 0.10"
    )


def test_chinese_is_measured_in_characters() -> None:
    cfg = TextCleanConfig(min_words=10)
    assert gopher_violation("床前明月光", cfg) == "characters 5 < 10"
    # Split on whitespace this is one 20-letter "word" (mean length 20 > 10); per character it passes.
    assert gopher_violation("床前明月光，疑是地上霜。举头望明月，低头思故乡。", cfg) is None
    assert gopher_violation("啊啊啊啊\n啊啊啊啊\n啊啊啊啊", cfg) == "duplicate lines 0.67 > 0.30"


def test_clean_chain_order_and_reasons_counted_per_rule() -> None:
    cfg = CleanConfig(text=TextCleanConfig(simplify_chinese=True, languages=["en", "zh"]))
    names = [s.name for s in clean_steps({"text"}, cfg)]
    order = ["decode-text", "normalize-text", "control-chars", "t2s", "language", "quality"]
    assert names[: len(order)] == order
    later = ["quality", "short-text", "exact-dedup", "near-dedup"]
    assert sorted(later, key=names.index) == later
    batch = [
        text_record("舉頭望明月，低頭思故鄉。床前明月光，疑是地上霜。", "zh.txt"),
        text_record("Le chat est sur la table et il dort toute la journée.", "fr.txt"),
        text_record("Go ahead... make my day.\n\t\t-- Dirty Harry", "harry.txt"),
        text_record(
            "Real programmers don't comment their code. It was hard to write,\nit should be hard to read."
        ),
    ]
    kept, report = apply_steps(clean_steps({"text"}, cfg), batch)
    # t2s ran, and NFKC folded the full-width commas.
    assert texts_of(kept)[0] == "举头望明月,低头思故乡。床前明月光,疑是地上霜。"
    assert [r.meta["lang"]["code"] for r in kept] == ["zh", "en"]
    dropped = report.as_dict()["dropped"]
    assert dropped["language"]["examples"][0].startswith("fr.txt: language: fr (")
    assert dropped["gopher: symbol/word ratio"]["examples"] == [
        "harry.txt: gopher: symbol/word ratio 0.12 > 0.10"
    ]


def test_quality_can_be_switched_off() -> None:
    names = [s.name for s in text_quality_steps(TextCleanConfig(quality=False))]
    assert names == ["control-chars", "language"]


def test_steps_are_parallel_safe_and_pickle_small_for_workers() -> None:
    cfg = TextCleanConfig(simplify_chinese=True, languages=["en"])
    for step in text_quality_steps(cfg):
        assert step.parallel_safe
        copy = pickle.loads(pickle.dumps(step))  # no model or converter inside: loaded per process
        assert len(pickle.dumps(step)) < 2000
        record = text_record("Real programmers don't comment their code. It was hard to write.")
        assert copy([record]).kept == step([record]).kept


def test_clean_text_section_parses_from_toml_and_rejects_typos() -> None:
    cfg = parse_config({"clean": {"text": {"languages": ["en"], "near_dup_threshold": 0.9}}})
    assert (cfg.clean.text.languages, cfg.clean.text.near_dup_threshold) == (["en"], 0.9)
    assert cfg.clean.text.shingle_size == 5 and cfg.clean.text.num_perm == 128
    with pytest.raises(ConfigError, match=r"\[clean\]\.text\.shingles: unknown key"):
        parse_config({"clean": {"text": {"shingles": 3}}})
