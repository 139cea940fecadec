"""Ad-copy studio, no model: product tables (good and malformed), constraints, impossible ones, repairs,
and the ranker's learned preference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genloop.apps.adcopy.constraints import contains, impossible, length_of, violations
from genloop.apps.adcopy.pastcopy import read_past_copy
from genloop.apps.adcopy.products import Product, read_products
from genloop.apps.adcopy.ranker import TRUST_ROWS, FeedbackRow, LearnedPreference, rank, similarity
from genloop.apps.adcopy.repair import repair
from genloop.apps.adcopy.standin import PAST_COPY, PRODUCTS
from genloop.errors import DataError

HEADER = "id,name,category,features,audience,tone,language,must_include,banned,max_length\n"


def product(**changes: object) -> Product:
    fields: dict[str, object] = {"id": "p", "name": "TrailLite", "language": "en", "max_length": 10}
    fields.update(changes)
    return Product(**fields)  # type: ignore[arg-type]


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


# ---- product tables -------------------------------------------------------------------------------


def test_reads_the_builtin_sample_and_both_file_types(tmp_path: Path) -> None:
    products = read_products(PRODUCTS)
    assert len(products) == 12 and {p.language for p in products} == {"en", "zh"}
    phone = next(p for p in products if p.id == "phone-x1")
    assert phone.must_include == ("星耀X1", "快充") and phone.banned == ("最好", "第一")
    assert phone.unit == "characters" and phone.max_length == 24

    rows = [
        {"id": "a", "name": "Lumo", "language": "EN", "max_length": 8, "must_include": ["Lumo"],
         "banned": ["cheap", "free"], "features": ["USB-C"]},
        {"id": "b", "name": "清茶", "language": "zh-CN", "max_length": "16", "Must-Include": "清茶|明前"},
    ]  # fmt: skip
    jsonl = write(tmp_path / "p.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    a, b = read_products(jsonl)
    assert a.language == "en" and a.banned == ("cheap", "free") and a.features == ("USB-C",)
    assert b.language == "zh" and b.max_length == 16 and b.must_include == ("清茶", "明前")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("id,name,language\np1,A,en\n", "missing column(s) 'max_length'"),
        (HEADER + "p1,A,c,,,,fr,,,10\n", "p.csv:2: field 'language' is 'fr'"),
        (
            HEADER + "p1,A,c,,,,en,,,0\n",
            "p.csv:2: field 'max_length' must be a positive whole number (got '0')",
        ),
        (HEADER + "p1,A,c,,,,en,,,1.5\n", "p.csv:2: field 'max_length' must be a positive whole number"),
        (HEADER + "p1,A,c,,,,en,,,ten\n", "p.csv:2: field 'max_length'"),
        (HEADER + "p1,,c,,,,en,,,10\n", "p.csv:2: field 'name' is missing or empty"),
        (HEADER + "p1,A,c,,,,en,,,10\np1,B,c,,,,en,,,10\n", "p.csv:3: product id 'p1' already used at"),
        ("id,name,language,max_length,must_inclde\np1,A,en,5,x\n", "unknown column(s) 'must_inclde'"),
        (HEADER + "p1,A,c,,,,en,,10\n", "p.csv:2: 9 fields but the header has 10"),
        (HEADER, "no products in the file"),
    ],
)
def test_malformed_csv_names_file_line_and_field(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(DataError) as caught:
        read_products(write(tmp_path / "p.csv", body))
    assert expected in str(caught.value)
    assert caught.value.hint


def test_malformed_jsonl_and_wrong_encoding(tmp_path: Path) -> None:
    good = '{"id": "a", "name": "A", "language": "en", "max_length": 5}\n'
    with pytest.raises(DataError, match=r"p\.jsonl:2: not valid JSON"):
        read_products(write(tmp_path / "p.jsonl", good + '{"id": "b", "name": \n'))
    with pytest.raises(DataError, match=r"p\.jsonl:1: a JSON list, not an object"):
        read_products(write(tmp_path / "p.jsonl", "[1, 2]\n"))
    with pytest.raises(DataError, match=r"p\.jsonl:1: field 'banned' must be a list of strings"):
        read_products(write(tmp_path / "p.jsonl", good.replace("}", ', "banned": {"x": 1}}')))
    with pytest.raises(DataError, match=r"p\.jsonl:1: field 'max_length' must be a positive whole number"):
        read_products(write(tmp_path / "p.jsonl", good.replace('"max_length": 5', '"max_length": true')))
    latin1 = (HEADER + "p1,Café,c,,,,en,,,10\n").encode("utf-8").replace("é".encode(), b"\xff")
    with pytest.raises(DataError, match=r"p\.csv: unknown text encoding .* line 2") as caught:
        read_products(write(tmp_path / "p.csv", latin1))
    assert "iconv" in str(caught.value.hint)
    gbk = (HEADER + "p1,清茶,c,,,,zh,清茶,,10\n").encode("gb18030")  # Chinese Windows tools: read fine
    assert read_products(write(tmp_path / "gbk.csv", gbk))[0].must_include == ("清茶",)
    with pytest.raises(DataError, match="unknown product table file type"):
        read_products(write(tmp_path / "p.xlsx", "x"))


# ---- constraints ----------------------------------------------------------------------------------


def test_length_keywords_and_banned_words_en_and_zh() -> None:
    assert length_of("Light — and fast!", "en") == 3  # the dash is not a word
    assert length_of("轻薄 机身，续航持久。", "zh") == 10  # spaces do not count, punctuation does
    assert contains("Fast 5g for all", "5G") and not contains("economy class", "eco")
    en = product(must_include=("TrailLite", "waterproof"), banned=("cheap", "best deal"), max_length=6)
    assert violations("TrailLite: waterproof and light.", en) == []
    kinds = [v.kind for v in violations("The BEST DEAL, cheap cheap shoes for everyone today", en)]
    assert kinds == [
        "too_long",
        "missing_keyword",
        "missing_keyword",
        "banned_word",
        "banned_word",
        "banned_word",
    ]
    assert violations("TrailLite waterproof, cheaper.", en) == []  # whole words: cheaper is not cheap
    zh = product(language="zh", must_include=("星耀X1",), banned=("最好",), max_length=12)
    assert violations("星耀X1，最好的手机", zh)[0].detail == "banned '最好' is present"
    assert [v.kind for v in violations("星耀X1 is great", zh)] == ["wrong_language"]
    assert [v.kind for v in violations("DEDE，星耀X1。", zh)] == ["wrong_language"]
    assert violations("星耀X1，好看", zh) == []
    assert [v.kind for v in violations("TrailLite, 做工精细 waterproof", en)] == ["wrong_language"]
    assert violations("Meet 星耀X1 today", product(must_include=("星耀X1",))) == []  # required: allowed
    assert [v.kind for v in violations("星耀X1，续航持久，快充轻薄，值得拥有", zh)] == ["too_long"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"must_include": ("Free",), "banned": ("free",)},
            "'Free' is both required (must_include) and banned",
        ),
        (
            {"must_include": ("free shipping",), "banned": ("free",)},
            "required 'free shipping' contains the banned 'free'",
        ),
        (
            {"must_include": ("TrailLite", "waterproof", "grippy"), "max_length": 2},
            "the required words alone ('TrailLite, waterproof, grippy') take 3 words, more than max_length 2",
        ),
        (
            {"language": "zh", "must_include": ("最好手机",), "banned": ("最好",)},
            "contains the banned '最好'",
        ),
        (
            {"language": "zh", "must_include": ("星耀X1", "快充"), "max_length": 6},
            "the required words alone ('星耀X1、快充') take 7 characters, more than max_length 6",
        ),
    ],
)
def test_impossible_constraints_are_found_up_front(changes: dict[str, object], expected: str) -> None:
    reasons = impossible(product(**changes))
    assert any(expected in reason for reason in reasons), reasons


def test_possible_constraints_are_not_flagged() -> None:
    assert impossible(product(must_include=("TrailLite",), banned=("cheap",), max_length=1)) == []
    assert impossible(product(language="zh", must_include=("星耀X1",), banned=("最",), max_length=4)) == []


def test_repair_removes_banned_hooks_required_and_trims_or_says_nothing_is_left() -> None:
    en = product(must_include=("TrailLite", "waterproof"), banned=("cheap", "best"), max_length=8)
    fixed = repair("The best cheap shoe for long walks on the mountain trail and more.", en)
    assert violations(fixed.text, en) == [] and "cheap" not in fixed.text.lower()
    assert fixed.steps[0] == "removed banned 'best', 'cheap'" and "trimmed" in fixed.steps[1]
    assert repair("cheap best", en).generated_kept is False
    zh = product(language="zh", must_include=("星耀X1", "快充"), banned=("最好", "第一"), max_length=16)
    fixed = repair("这是最好的手机，续航持久，第一品牌，拍照清晰，价格实惠，值得购买。", zh)
    assert violations(fixed.text, zh) == [] and fixed.generated_kept


# ---- past copy and ranker -------------------------------------------------------------------------


def test_past_copy_reading(tmp_path: Path) -> None:
    lines = read_past_copy(PAST_COPY)
    assert {line.language for line in lines} == {"en", "zh"} and len(lines) >= 600
    assert all(line.license in ("MIT", "BSD-3-Clause") for line in lines)
    assert lines[0].training_text().startswith("⟦zh|")
    with pytest.raises(DataError, match="no column text / copy"):
        read_past_copy(write(tmp_path / "c.csv", "slogans\nx\n"))
    with pytest.raises(DataError, match="training needs at least 8"):
        read_past_copy(write(tmp_path / "c.csv", "text\nBuilt for long days.\n"))


def test_learned_preference_fits_saves_and_loads(tmp_path: Path) -> None:
    liked = ["Summer light for long evenings", "Summer days, cold coffee", "Bright summer mornings"]
    disliked = ["Winter is coming, buy now", "Grey winter sale", "Winter stock must go"]
    attrs = {"category": "home", "tone": "warm", "language": "en"}
    rows = [FeedbackRow(t, attrs, True) for t in liked] + [FeedbackRow(t, attrs, False) for t in disliked]
    preference = LearnedPreference.fit(rows)
    summer, winter = (preference.probability(t, attrs) for t in ("A summer lamp", "A winter lamp"))
    assert summer > 0.5 > winter
    preference.save(tmp_path)
    assert LearnedPreference.load(tmp_path).probability("A summer lamp", attrs) == pytest.approx(summer, 1e-5)
    assert LearnedPreference.load(tmp_path / "none").probability("x", attrs) == 0.5
    with pytest.raises(DataError, match="liked and not-liked examples"):
        LearnedPreference.fit(rows[:3])


def test_ranking_pushes_near_duplicates_down() -> None:
    texts = ["Light shoes for long trails", "Light shoes for long trails today", "Coffee that wakes the city"]
    ranked = rank(
        texts,
        log_likelihoods=[-1.0, -1.0, -1.5],
        lengths=[5, 6, 5],
        repairs=[0, 0, 0],
        max_length=10,
        attributes={},
        preference=LearnedPreference(),
    )
    assert [r.text for r in ranked][1] == "Coffee that wakes the city"  # novelty beats the paraphrase
    assert similarity(texts[0], texts[1]) > 0.5 > similarity(texts[0], texts[2])


def test_the_learned_part_counts_more_as_its_rows_grow() -> None:
    """trust = rows / (rows + TRUST_ROWS): a preference fitted on few rows barely moves the ranking."""
    attrs = {"category": "home", "tone": "warm", "language": "en"}
    rows = [FeedbackRow("Summer light", attrs, True), FeedbackRow("Winter sale", attrs, False)]
    fitted = LearnedPreference.fit(rows)
    learned = {}
    for n in (2, TRUST_ROWS, 100 * TRUST_ROWS):
        preference = LearnedPreference(fitted.weights, fitted.bias, n)
        [scored] = rank(["A summer lamp"], log_likelihoods=[-1.0], lengths=[3], repairs=[0], max_length=10,
                        attributes=attrs, preference=preference)  # fmt: skip
        learned[n] = scored.parts["learned"]
    raw = fitted.probability("A summer lamp", attrs) - 0.5
    assert raw > 0
    assert learned[2] == pytest.approx(raw * 2 / (2 + TRUST_ROWS))
    assert learned[TRUST_ROWS] == pytest.approx(raw / 2)
    assert learned[2] < learned[TRUST_ROWS] < learned[100 * TRUST_ROWS] < raw
