"""Honest repairs of a generated line, so more of the over-generated candidates meet the constraints.

    clean         first non-empty line, <unk>/<eos> and the prefix's ⟦ ⟧ | removed, the `punctuation`
                  processor's repair
    banned words  removed (not masked: "***" in an ad is no ad), the spaces and punctuation around
                  them tidied; repeated, since a removal may join two pieces into another banned word
    fit           the longest prefix of the line, cut after a sentence or clause if that keeps most
                  of it, else after a word (English) or character (Chinese, never inside an English
                  word), such that the prefix plus a short hook naming the required words still
                  missing fits max_length:  "Built for long days — TrailLite, waterproof."
                  / "轻薄机身，续航持久，星耀X1、快充。"

Every repair is recorded (`Repaired.steps`), and the caller re-checks the result with
`constraints.violations`: a line that still breaks a constraint is dropped, never shown. A line
whose generated words were all cut away (only the hook is left) is reported as such, not repaired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from genloop.apps.adcopy.constraints import KEYWORD_JOINER, banned_found, contains, length_of
from genloop.apps.adcopy.products import Product
from genloop.generate.postprocess.text import HAN, banned_word_pattern, repair_punctuation

SPECIAL_TOKENS = re.compile(r"<unk>|<eos>|[⟦⟧|]")
"""Special tokens, and the control prefix's reserved characters (conditioning.py)."""
SENTENCE_OR_CLAUSE_END = re.compile(r"[。！？!?.;；，,、：:—]+")
EN_TOKEN_END = re.compile(r"\S+")
ZH_TOKEN_END = re.compile(f"[{HAN}]|[^\\s{HAN}]+")
TRAILING_EN = re.compile(
    r"(?:[\s,;:—–-]+|\s+(?:and|or|the|a|an|with|for|to|of|in|on|at|your|our|my|but|so|by|from|&|"
    r"is|are|was|were|be|will|can|that|which|who|it|its|than|as|every|each|very|more|most|not|no))+$",
    re.IGNORECASE,
)
TRAILING_ZH = re.compile(r"[\s，、；：,;:—–\-的和与及或]+$")
LEADING_PUNCT = re.compile(r"^[\s,.;:!?，。；：！？、—–\-]+")
CLAUSE_SHARE = {"en": 0.6, "zh": 0.5}
"""A clause-boundary cut is preferred when it keeps this share of what the best word (en) or
character (zh) cut keeps: a Chinese cut inside a word reads worse than a shorter line."""
MAX_BANNED_PASSES = 3


@dataclass
class Repaired:
    text: str
    steps: list[str] = field(default_factory=list)
    generated_kept: bool = True
    """False when none of the model's words survived (the line would be the hook alone)."""


def clean(text: str) -> str:
    """The first non-empty line of `text`, special tokens removed, spacing and punctuation repaired."""
    text = SPECIAL_TOKENS.sub("", text)
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return LEADING_PUNCT.sub("", repair_punctuation(line)).strip()


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" +([,.;:!?，。；：！？、])", r"\1", text)
    text = re.sub(r"([,;:，；：、])(?:\s*[,;:，；：、])+", r"\1", text)  # ", ," left by a removal
    text = re.sub(r"\(\s*\)|（\s*）", "", text)
    return LEADING_PUNCT.sub("", text).strip()


def remove_banned(text: str, product: Product) -> tuple[str, list[str]]:
    """`text` without any banned word; the words removed (as they appeared)."""
    removed: list[str] = []
    patterns = [p for p in banned_word_pattern(list(product.banned)) if p is not None]
    for _ in range(MAX_BANNED_PASSES):
        found = banned_found(text, product.banned)
        if not found:
            break
        removed += found
        for pattern in patterns:
            text = pattern.sub("", text)
        text = _tidy(text)
    return text, removed


def _strip_tail(text: str, language: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = (TRAILING_ZH if language == "zh" else TRAILING_EN).sub("", text).rstrip()
    return text


def _prefixes(text: str, language: str) -> tuple[list[str], list[str]]:
    """(clause-boundary prefixes, token-boundary prefixes) of `text`, longest first, tails tidied."""
    clause_ends = [m.end() for m in SENTENCE_OR_CLAUSE_END.finditer(text)]
    token_pattern = ZH_TOKEN_END if language == "zh" else EN_TOKEN_END
    token_ends = [m.end() for m in token_pattern.finditer(text)]
    clauses = [text[:end] for end in sorted(set(clause_ends), reverse=True)]
    tokens = [text[:end] for end in sorted(set(token_ends), reverse=True)]

    def tidy(prefix: str) -> str:
        prefix = prefix.strip()
        ended = bool(re.search(r"[.!?。！？]$", prefix))
        return prefix if ended else _strip_tail(prefix, language)

    return [tidy(p) for p in clauses], [tidy(p) for p in tokens]


def with_hook(kept: str, missing: list[str], language: str) -> list[str]:
    """The ways to append the `missing` required words to `kept`, most natural first."""
    if not missing:
        return [kept]
    joined = KEYWORD_JOINER[language].join(missing)
    if not kept:
        return [joined]
    if language == "zh":
        body = kept.rstrip("。！？!?；;，,、：:")
        return [f"{body}，{joined}。", f"{body}，{joined}"]
    if re.search(r"[.!?]$", kept):
        return [f"{kept} {joined[0].upper() + joined[1:] if joined.islower() else joined}."]
    return [f"{kept} — {joined}."]


def _fit(prefix: str, product: Product) -> tuple[str, list[str]] | None:
    """(the first hooked variant of `prefix` short enough, the words the hook added), or None."""
    missing = [word for word in product.must_include if not contains(prefix, word)]
    for line in with_hook(prefix, missing, product.language):
        if length_of(line, product.language) <= product.max_length:
            return line, missing
    return None


NOTHING_FITS = "nothing of the generation fits"


def fit(text: str, product: Product) -> tuple[str, list[str], str]:
    """(line, words the hook added, how it was cut): the longest prefix of `text` that fits."""
    whole = _fit(text, product)
    if whole is not None:
        return whole[0], whole[1], ""
    clauses, tokens = _prefixes(text, product.language)
    best_clause = next(((p, fitted) for p in clauses if p and (fitted := _fit(p, product))), None)
    best_token = next(((p, fitted) for p in tokens if p and (fitted := _fit(p, product))), None)
    language = product.language
    if best_clause and (
        not best_token
        or length_of(best_clause[0], language) >= CLAUSE_SHARE[language] * length_of(best_token[0], language)
    ):
        return *best_clause[1], "trimmed at a clause boundary"
    if best_token:
        return *best_token[1], "trimmed at a word boundary"
    line, added = _fit("", product) or ("", list(product.must_include))
    return line, added, NOTHING_FITS


def repair(text: str, product: Product) -> Repaired:
    """`text` cleaned, its banned words removed and fitted to the length with the required words."""
    steps = []
    cleaned = clean(text)
    if cleaned != text.strip():
        steps.append("cleaned")
    without, removed = remove_banned(cleaned, product)
    if removed:
        steps.append(f"removed banned {', '.join(map(repr, dict.fromkeys(removed)))}")
    if length_of(without, product.language) == 0:
        return Repaired(without, steps, generated_kept=False)
    line, added, cut = fit(without, product)
    if cut:
        steps.append(cut)
    if added:
        steps.append(f"hook for {', '.join(map(repr, added))}")
    return Repaired(line, steps, generated_kept=cut != NOTHING_FITS)
