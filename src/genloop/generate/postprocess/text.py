"""Text post-processors for Chinese and English (`Artifact.data` is the body as a str).

    punctuation      whitespace repair (runs collapsed, lines trimmed, no space before punctuation;
                     no space between Chinese characters), full-width letters/digits → half-width;
                     in a Chinese line ASCII , . ? ! : ; ( ) → ，。？！：；（）, "..." → "……";
                     in an English line ，。？！：；（） → ASCII
    chinese-script   simplified ↔ traditional with OpenCC (variant: taiwan | standard | hongkong)
    trim-repetition  drops sentences and lines already said, then a loop of one n-gram at the end
    max-length       at most `limit` characters (Chinese) or words (English), cut after a sentence
    banned-words     replaces listed words: whole words, any case, for English; substrings for Chinese

A line is Chinese when it has more Chinese characters than English words ("我用Python写代码" is
Chinese; "I love 北京" is English). Sentences end at 。！？ (Chinese) or at . ! ? before a space or the
end (English), closing quotes included, and at every line break.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from genloop.errors import MissingDependencyError
from genloop.generate.artifact import Artifact
from genloop.generate.postprocess.registry import Processor, register_processor

TEXT = frozenset({"text"})
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
CJK_PUNCT = "，。？！：；、（）《》〈〉「」『』【】“”‘’…—·"
HAN_CHAR = re.compile(f"[{HAN}]")
CHINESE_CHAR = re.compile(f"[{HAN}{CJK_PUNCT}]")
ENGLISH_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
TO_FULL_WIDTH = {",": "，", ".": "。", "?": "？", "!": "！", ":": "：", ";": "；"}
TO_ASCII = {"，": ",", "。": ".", "？": "?", "！": "!", "：": ":", "；": ";", "（": "(", "）": ")"}
SENTENCE_END = re.compile(r"[。！？]+[”’」』）)\"']*|[.!?]+[”’\"')\]]*(?=\s|$)|\n")
ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "no", "jr", "sr"}
)
TOKEN = re.compile(f"[{HAN}]|[^\\s{HAN}]+")


def is_chinese(text: str) -> bool:
    """More Chinese characters than English words."""
    return len(HAN_CHAR.findall(text)) > len(ENGLISH_WORD.findall(text))


def sentences(text: str) -> list[str]:
    """`text` cut after each sentence end and line break; the pieces join back to `text` exactly."""
    pieces, start = [], 0
    for match in SENTENCE_END.finditer(text):
        word_before = text[start : match.start()].rsplit(None, 1)[-1:]
        if match.group().startswith(".") and word_before and word_before[0].lower() in ABBREVIATIONS:
            continue  # "Mr. Smith" is one sentence
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _squash(piece: str) -> str:
    """A sentence's identity: its words, any case or spacing, its end mark ignored (我爱你。 = 我爱你！)."""
    return " ".join(piece.split()).lower().rstrip(".!?。！？”’」』）)\"' ")


# ---------------------------------------------------------------- punctuation


def halfwidth_alnum(text: str) -> str:
    """Full-width ０-９ Ａ-Ｚ ａ-ｚ → ASCII (they sit U+FEE0 above it)."""
    return "".join(
        chr(ord(c) - 0xFEE0) if "０" <= c <= "９" or "Ａ" <= c <= "Ｚ" or "ａ" <= c <= "ｚ" else c
        for c in text
    )


def _neighbour(line: str, index: int, step: int) -> str:
    index += step
    while 0 <= index < len(line) and line[index] == " ":
        index += step
    return line[index] if 0 <= index < len(line) else ""


def _chinese_parentheses(line: str) -> str:
    """( ) → （ ） for pairs that hold Chinese or follow a Chinese character; f(x) stays."""
    chars, open_at = list(line), []
    for index, char in enumerate(line):
        if char == "(":
            open_at.append(index)
        elif char == ")" and open_at:
            start = open_at.pop()
            if CHINESE_CHAR.search(line[start + 1 : index]) or CHINESE_CHAR.match(
                _neighbour(line, start, -1)
            ):
                chars[start], chars[index] = "（", "）"
    return "".join(chars)


def _repair_chinese(line: str) -> str:
    line = re.sub(r"\.{3,}|。{3,}", "……", line)
    line = _chinese_parentheses(line)
    chars = list(line)
    for index, char in enumerate(line):
        if char not in TO_FULL_WIDTH:
            continue
        before = line[index - 1] if index else ""
        after = line[index + 1] if index + 1 < len(line) else ""
        if before.isascii() and before.isalnum() and after.isascii() and after.isalnum():
            continue  # 3.14, 1,000, 10:30
        if char == ":" and line.startswith("//", index + 1):
            continue  # a URL
        if char == "." and line[:index].isdigit():
            continue  # "1. 第一步" numbers a list
        previous, following = _neighbour(line, index, -1), _neighbour(line, index, 1)
        if CHINESE_CHAR.match(previous) or CHINESE_CHAR.match(following) or not following:
            chars[index] = TO_FULL_WIDTH[char]
    line = "".join(chars)
    line = re.sub(f" *([{CJK_PUNCT}]) *", r"\1", line)
    return re.sub(f"(?<=[{HAN}]) +(?=[{HAN}])", "", line)


def _repair_english(line: str) -> str:
    line = re.sub(r"([，。？！：；）])(?=[A-Za-z0-9])", lambda m: TO_ASCII[m.group(1)] + " ", line)
    line = "".join(TO_ASCII.get(char, char) for char in line)
    line = re.sub(r" +([,.?!:;)])", r"\1", line)
    line = re.sub(r"\( +", "(", line)
    return re.sub(r"(?<=[A-Za-z])([,;!?])(?=[A-Za-z])", r"\1 ", line)


def repair_punctuation(text: str) -> str:
    """The `punctuation` processor's whole effect (see the module docstring)."""
    lines = []
    for raw in halfwidth_alnum(text.replace("\r\n", "\n")).split("\n"):
        line = re.sub(r"[ \t\u00a0]+", " ", raw).strip()
        lines.append(_repair_chinese(line) if is_chinese(line) else _repair_english(line))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# ---------------------------------------------------------------- repetition


def drop_repeated_sentences(text: str) -> str:
    """Drops each sentence already said (same words, any case or spacing), and lines left empty by that."""
    seen: set[str] = set()
    lines = []
    for line in text.split("\n"):
        pieces = sentences(line)
        kept = []
        for piece in pieces:
            key = _squash(piece)
            if key in seen and len(TOKEN.findall(key)) >= 2:  # "Yes." or "好。" may be said twice
                continue
            seen.add(key)
            kept.append(piece)
        if len(kept) == len(pieces):
            lines.append(line)
        elif any(_squash(piece) for piece in kept):
            lines.append("".join(kept).strip())
    return "\n".join(lines)


def trim_tail_loop(text: str, *, min_repeats: int, max_ngram: int, min_tokens: int = 6) -> str:
    """Cut a loop of one n-gram at the end down to its first occurrence.

    Tokens are Chinese characters and runs of other non-space characters. The longest suffix that repeats
    with period n (a partial last copy included) counts as a loop when it holds ≥ `min_repeats` copies
    and ≥ `min_tokens` tokens, so "哈哈哈" and "very very very" stay.
    """
    tokens = list(TOKEN.finditer(text))
    keys = [token.group().lower() for token in tokens]
    best: tuple[int, int] | None = None  # (loop length, where the kept copy ends)
    for n in range(1, max_ngram + 1):
        if len(keys) < 2 * n:
            break
        end = len(keys)
        if keys[-1] != keys[-1 - n] and keys[-1 - n].startswith(keys[-1]):
            end -= 1  # a last token cut short ("and then and then and th") belongs to the loop
        i = end - n - 1
        while i >= 0 and keys[i] == keys[i + n]:
            i -= 1
        start = i + 1
        length = end - start
        if length >= max(min_repeats * n, min_tokens) and (best is None or length > best[0]):
            best = (length, tokens[start + n - 1].end())
    return text if best is None else text[: best[1]]


# ---------------------------------------------------------------- length


def _count(text: str, unit: str) -> int:
    return len(re.sub(r"\s", "", text)) if unit == "chars" else len(text.split())


def _cut_inside_sentence(sentence: str, limit: int, unit: str) -> str:
    """The first `limit` units of one over-long sentence: at a clause mark if there is one, never mid-word."""
    if unit == "words":
        return " ".join(sentence.split()[:limit]).rstrip(",;:")
    end, seen = 0, 0
    for index, char in enumerate(sentence):
        if not char.isspace():
            seen += 1
            if seen > limit:
                break
        end = index + 1
    head = sentence[:end]
    clause = max(head.rfind(mark) for mark in "，；、,;：:")
    if clause > 0:
        return head[:clause].rstrip()
    word = re.search(r"[A-Za-z0-9'_-]+$", head)
    if word and end < len(sentence) and re.match(r"[A-Za-z0-9'_-]", sentence[end]):
        head = head[: word.start()]  # do not split an English word inside Chinese text
    return head.rstrip()


def limit_length(text: str, limit: int, unit: str) -> str:
    """Whole sentences while they fit in `limit` units; else the first sentence cut inside."""
    if unit == "auto":
        unit = "chars" if is_chinese(text) else "words"
    if _count(text, unit) <= limit:
        return text
    kept, used = [], 0
    for piece in sentences(text):
        used += _count(piece, unit)
        if used > limit:
            break
        kept.append(piece)
    if any(piece.strip() for piece in kept):
        return "".join(kept).rstrip()
    return _cut_inside_sentence(text.lstrip(), limit, unit)


# ---------------------------------------------------------------- banned words


def read_word_list(path: str | Path) -> list[str]:
    """One word or phrase a line, UTF-8; blank lines and lines starting with # skipped."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"banned-words file {file} does not exist (give a UTF-8 file, one word a line)")
    lines = (line.strip() for line in file.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def banned_word_pattern(words: Sequence[str]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """(English whole-word, any case; Chinese substring) patterns, longest words first."""
    ordered = sorted({word.strip() for word in words if word.strip()}, key=len, reverse=True)
    english = [r"\s+".join(map(re.escape, word.split())) for word in ordered if not HAN_CHAR.search(word)]
    chinese = [re.escape(word) for word in ordered if HAN_CHAR.search(word)]
    edge = "A-Za-z0-9_"
    return (
        re.compile(f"(?<![{edge}])(?:{'|'.join(english)})(?![{edge}])", re.IGNORECASE) if english else None,
        re.compile("|".join(chinese)) if chinese else None,
    )


# ---------------------------------------------------------------- processors


@dataclass
class TextProcessor:
    """A text processor is a pure function of the body; meta, format and options pass through."""

    name: str
    transform: Callable[[str], str]
    modalities: frozenset[str] = TEXT

    def apply(self, artifact: Artifact) -> Artifact:
        return artifact.replace(data=self.transform(artifact.text))


@register_processor("punctuation")
def punctuation() -> Processor:
    return TextProcessor("punctuation", repair_punctuation)


@functools.lru_cache(maxsize=8)
def _opencc(config: str) -> Callable[[str], str]:
    try:
        import opencc
    except ModuleNotFoundError:
        raise MissingDependencyError(
            "chinese-script needs the Python package opencc, which is not installed",
            hint="pip install opencc",
        ) from None
    convert: Callable[[str], str] = opencc.OpenCC(config).convert
    return convert


OPENCC_CONFIG = {"taiwan": "s2tw", "standard": "s2t", "hongkong": "s2hk"}


@register_processor("chinese-script")
def chinese_script(*, to: str, variant: str = "taiwan") -> Processor:
    """`to` simplified | traditional. Traditional character forms by `variant`: taiwan (裡面, 麵條; the
    default, the forms most readers of traditional Chinese use), standard (OpenCC's 裏面, 麪條), hongkong."""
    if to not in ("simplified", "traditional"):
        raise ValueError(f"to must be 'simplified' or 'traditional' (got {to!r})")
    if variant not in OPENCC_CONFIG:
        raise ValueError(f"variant must be one of {', '.join(OPENCC_CONFIG)} (got {variant!r})")
    return TextProcessor("chinese-script", _opencc("t2s" if to == "simplified" else OPENCC_CONFIG[variant]))


@register_processor("trim-repetition")
def trim_repetition(*, min_repeats: int = 3, max_ngram: int = 16) -> Processor:
    """Repeated sentences/lines dropped, then a tail loop of ≥ `min_repeats` copies of an n-gram."""
    if isinstance(min_repeats, bool) or not isinstance(min_repeats, int) or min_repeats < 2:
        raise ValueError(f"min_repeats must be a whole number of at least 2 (got {min_repeats!r})")
    if isinstance(max_ngram, bool) or not isinstance(max_ngram, int) or not 1 <= max_ngram <= 64:
        raise ValueError(f"max_ngram must be a whole number from 1 to 64 (got {max_ngram!r})")

    def transform(text: str) -> str:
        return trim_tail_loop(drop_repeated_sentences(text), min_repeats=min_repeats, max_ngram=max_ngram)

    return TextProcessor("trim-repetition", transform)


@register_processor("max-length")
def max_length(*, limit: int, unit: str = "auto") -> Processor:
    """At most `limit` units: `chars` (non-space characters), `words`, or `auto` (chars for Chinese text)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of at least 1 (got {limit!r})")
    if unit not in ("auto", "chars", "words"):
        raise ValueError(f"unit must be auto, chars or words (got {unit!r})")
    return TextProcessor("max-length", functools.partial(limit_length, limit=limit, unit=unit))


@register_processor("banned-words")
def banned_words(
    *, words: Sequence[str] = (), file: str | None = None, replacement: str = "***"
) -> Processor:
    """Replace each of `words` (and the words of `file`) by `replacement`."""
    if isinstance(words, str) or not all(isinstance(word, str) for word in words):
        raise ValueError(f"words must be a list of strings (got {words!r})")
    if not isinstance(replacement, str):
        raise ValueError(f"replacement must be a string (got {replacement!r})")
    listed = [*words, *(read_word_list(file) if file is not None else [])]
    english, chinese = banned_word_pattern(listed)
    if english is None and chinese is None:
        raise ValueError('no banned words given: set `words = [...]` or `file = "path"` with one word a line')

    def transform(text: str) -> str:
        for pattern in (english, chinese):
            if pattern is not None:
                text = pattern.sub(lambda _: replacement, text)
        return text

    return TextProcessor("banned-words", transform)
