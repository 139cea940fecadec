"""A product's constraints on one line of copy: how long, what it must say, what it must not.

    length      Chinese: characters other than whitespace (punctuation counts, as ad platforms
                count it); English: words, i.e. whitespace-separated tokens holding a letter or digit
                ("—" and "|" are not words)
    must_include  each word or phrase present: English whole words, any case ("5G" matches "5g",
                "eco" does not match "economy"); Chinese (a phrase with a Han character) as a substring
    banned      no banned word present, matched the same way (the generate stage's `banned-words`
                patterns, genloop.generate.postprocess.text)
    language    outside its required words, a zh product's line is Chinese (more Han characters than
                English words, as the text post-processors decide) and an en product's line holds
                no Han character

`violations(text, product)` returns every broken constraint with its reason; an empty list means
the line may be shown. `impossible(product)` finds constraints no line can meet, before any
generation: a required word that is banned or holds a banned word, or required words that alone
(joined as the shortest line could join them) exceed max_length. Generation refuses those
products with these messages instead of emitting a line that breaks one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from genloop.apps.adcopy.products import Product
from genloop.generate.postprocess.text import HAN_CHAR, banned_word_pattern, is_chinese

WORD = re.compile(r"\S+")
HAS_ALNUM = re.compile(r"[^\W_]")
WORD_EDGE = "A-Za-z0-9_"
KEYWORD_JOINER = {"en": ", ", "zh": "、"}
"""How the shortest possible line joins the required words (and how the repair hook lists them)."""


@dataclass(frozen=True)
class Violation:
    kind: str
    """too_long | missing_keyword | banned_word | empty | wrong_language"""
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail}


def length_of(text: str, language: str) -> int:
    """Characters (zh, whitespace not counted) or words (en) of `text`."""
    if language == "zh":
        return len(re.sub(r"\s", "", text))
    return sum(1 for token in WORD.findall(text) if HAS_ALNUM.search(token))


def keyword_pattern(word: str) -> re.Pattern[str]:
    """Where `word` occurs: a substring for Chinese, a whole word in any case otherwise."""
    if HAN_CHAR.search(word):
        return re.compile(re.escape(word))
    body = r"\s+".join(map(re.escape, word.split()))
    return re.compile(f"(?<![{WORD_EDGE}]){body}(?![{WORD_EDGE}])", re.IGNORECASE)


def contains(text: str, word: str) -> bool:
    return keyword_pattern(word).search(text) is not None


def banned_found(text: str, banned: tuple[str, ...] | list[str]) -> list[str]:
    """The banned words present in `text`, as they appear there, in order."""
    found = []
    for pattern in banned_word_pattern(list(banned)):
        if pattern is not None:
            found += [match.group() for match in pattern.finditer(text)]
    return found


def _without_required(text: str, product: Product) -> str:
    for word in product.must_include:
        text = keyword_pattern(word).sub(" ", text)
    return text


def violations(text: str, product: Product) -> list[Violation]:
    """Every constraint of `product` that `text` breaks, each with why (empty: the line is fine)."""
    problems: list[Violation] = []
    if not text.strip() or length_of(text, product.language) == 0:
        problems.append(Violation("empty", "the line has no words"))
    elif product.language == "zh" and HAS_ALNUM.search(rest := _without_required(text, product)):
        if not is_chinese(rest):
            problems.append(Violation("wrong_language", "the line is not Chinese; the product is zh"))
    elif product.language == "en" and HAN_CHAR.search(_without_required(text, product)):
        problems.append(Violation("wrong_language", "Chinese characters in a line for an en product"))
    length = length_of(text, product.language)
    if length > product.max_length:
        problems.append(
            Violation("too_long", f"{length} {product.unit}, at most {product.max_length} allowed")
        )
    for word in product.must_include:
        if not contains(text, word):
            problems.append(Violation("missing_keyword", f"required {word!r} is absent"))
    for word in banned_found(text, product.banned):
        problems.append(Violation("banned_word", f"banned {word!r} is present"))
    return problems


def shortest_line(product: Product) -> str:
    """The required words joined as tightly as a line can hold them."""
    return KEYWORD_JOINER[product.language].join(product.must_include)


def impossible(product: Product) -> list[str]:
    """Why no line can satisfy `product` (empty when some line can); one sentence per reason."""
    reasons = []
    lowered_banned = {word.lower(): word for word in product.banned}
    for word in product.must_include:
        if word.lower() in lowered_banned:
            reasons.append(f"{word!r} is both required (must_include) and banned")
            continue
        inside = banned_found(word, product.banned)
        if inside:
            reasons.append(
                f"required {word!r} contains the banned {', '.join(map(repr, dict.fromkeys(inside)))}"
            )
    if product.must_include:
        line = shortest_line(product)
        needed = length_of(line, product.language)
        if needed > product.max_length:
            reasons.append(
                f"the required words alone ({line!r}) take {needed} {product.unit}, "
                f"more than max_length {product.max_length}"
            )
    return reasons


def impossible_report(products: list[Product]) -> dict[str, list[str]]:
    """{product id: reasons} for every product whose constraints cannot be met."""
    return {product.id: reasons for product in products if (reasons := impossible(product))}
