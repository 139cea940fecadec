"""Text cleaning past NFKC: control characters, traditional→simplified, language, Gopher quality.

The quality rules are those of Gopher (Rae et al. 2021, "Scaling Language Models",
appendix A.1.1, https://arxiv.org/abs/2112.11446), as datatrove implements them;
thresholds come from `[clean.text]` (Gopher's own, except `min_words`, since genloop's
corpora are slogans, poems and tickets rather than web pages). Three changes:

* The ratio and repetition rules apply only to texts of at least `ratio_min_words`
  words (default 5): Gopher's documents have ≥ 50, and on "from Notepad" a mean word
  length or symbol ratio says nothing. Length itself is `min_text_chars`' business.
* Chinese and Japanese are not written with spaces, so when CJK characters make up
  at least `CJK_SHARE` of the letters a "word" is one CJK character (with any
  punctuation that follows it) or a run of non-CJK, non-space characters; the
  mean-word-length rule is skipped there (a character is not a word).
* The top-n-gram rule only counts an n-gram seen at least `MIN_NGRAM_REPEATS` (3)
  times. Gopher applies it to documents of ≥ 50 words, where that rarely matters; on
  short texts an n-gram seen once covers everything and one seen twice is ordinary
  style ("A man paints with his brains and not with his hands": 0.33 > 0.20).

Gopher's stop-word rule ("at least two of: the, be, to, of, and, that, have, with")
is English-only and drops most short texts, so it is left out.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from genloop.config import TextCleanConfig
from genloop.data.pipeline import Reason, StepOutput, check_each
from genloop.data.record import Record

# Cc (C0, DEL, C1) except tab/newline, plus invisible format characters that only hide
# text: zero-width space, soft hyphen, word joiner, BOM, and the bidi overrides/isolates
# that "Trojan Source" attacks use. ZWJ/ZWNJ stay: emoji and Persian need them.
_INVISIBLE = [0x00AD, 0x200B, 0x2060, 0xFEFF, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_CONTROL_TABLE = dict.fromkeys(
    [c for c in [*range(0x20), *range(0x7F, 0xA0)] if c not in (0x09, 0x0A)] + _INVISIBLE
)

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana, Han (Korean uses spaces)
_CJK_CHAR = re.compile(f"[{_CJK}]")
_CJK_WORD = re.compile(rf"[{_CJK}][^\s\w]*|[^\s{_CJK}]+")
MIN_NGRAM_REPEATS = 3
CJK_SHARE = 0.3
"""Texts where CJK characters are at least this share of letters are measured per character."""

LANGUAGE_VARIETIES = {"zh": ("zh", "wuu", "yue")}
"""A code in `[clean.text].languages` -> the py3langid labels it keeps."""

_BULLETS = ("•", "●", "○", "◦", "‣", "⁃", "-", "*", "·", "▪", "►")
_ELLIPSES = ("...", "…")


def remove_control_characters(text: str) -> str:
    return text.translate(_CONTROL_TABLE)


def is_cjk(text: str) -> bool:
    letters = sum(ch.isalpha() for ch in text)
    return letters > 0 and len(_CJK_CHAR.findall(text)) >= CJK_SHARE * letters


def words_of(text: str, cjk: bool) -> list[str]:
    """Whitespace-separated words, or for CJK text one word per CJK character (see module doc)."""
    return _CJK_WORD.findall(text) if cjk else text.split()


def top_ngram_char_share(words: list[str], n: int, total_chars: int) -> float:
    """Share of characters covered by the most frequent word n-gram, if seen ≥ MIN_NGRAM_REPEATS times."""
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not counts:
        return 0.0
    gram, times = counts.most_common(1)[0]
    return 0.0 if times < MIN_NGRAM_REPEATS else times * sum(len(w) for w in gram) / max(total_chars, 1)


def gopher_violation(text: str, cfg: TextCleanConfig) -> str | None:
    """The first Gopher rule `text` breaks, as "rule value > limit", or None."""
    cjk = is_cjk(text)
    words = words_of(text, cjk)
    n_words = len(words)
    unit = "characters" if cjk else "words"
    if n_words < cfg.min_words:
        return f"{unit} {n_words} < {cfg.min_words}"
    if n_words > cfg.max_words:
        return f"{unit} {n_words} > {cfg.max_words}"
    if n_words < cfg.ratio_min_words:
        return None
    if not cjk:
        mean = sum(len(w) for w in words) / n_words
        if not cfg.min_mean_word_length <= mean <= cfg.max_mean_word_length:
            limits = f"{cfg.min_mean_word_length:g}..{cfg.max_mean_word_length:g}"
            return f"mean word length {mean:.1f} not in {limits}"
    symbols = text.count("#") + sum(text.count(e) for e in _ELLIPSES)
    if symbols / n_words > cfg.max_symbol_word_ratio:
        return f"symbol/word ratio {symbols / n_words:.2f} > {cfg.max_symbol_word_ratio:.2f}"
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    for share, limit, label in (
        (sum(ln.startswith(_BULLETS) for ln in lines) / len(lines), cfg.max_bullet_lines, "bullet lines"),
        (sum(ln.endswith(_ELLIPSES) for ln in lines) / len(lines), cfg.max_ellipsis_lines, "ellipsis lines"),
    ):
        if share > limit:
            return f"{label} {share:.2f} > {limit:.2f}"
    alpha = sum(any(ch.isalpha() for ch in w) for w in words) / n_words
    if alpha < cfg.min_alpha_words:
        return f"alphabetic words {alpha:.2f} < {cfg.min_alpha_words:.2f}"
    return _repetition_violation(lines, words, cfg)


def _repetition_violation(lines: list[str], words: list[str], cfg: TextCleanConfig) -> str | None:
    seen: set[str] = set()
    duplicate_lines = duplicate_chars = 0
    for line in lines:
        if line in seen:
            duplicate_lines += 1
            duplicate_chars += len(line)
        seen.add(line)
    total_chars = sum(len(line) for line in lines)
    if duplicate_lines / len(lines) > cfg.max_duplicate_lines:
        return f"duplicate lines {duplicate_lines / len(lines):.2f} > {cfg.max_duplicate_lines:.2f}"
    if duplicate_chars / total_chars > cfg.max_duplicate_line_chars:
        share = duplicate_chars / total_chars
        return f"duplicate line characters {share:.2f} > {cfg.max_duplicate_line_chars:.2f}"
    word_chars = sum(len(w) for w in words)
    for n, limit in sorted(cfg.max_top_ngram_chars.items()):
        share = top_ngram_char_share(words, n, word_chars)
        if share > limit:
            return f"top {n}-gram characters {share:.2f} > {limit:.2f}"
    return None


# Loaded once per process and never pickled with a step (Ray ships steps to workers).
@lru_cache(maxsize=1)
def _t2s() -> Callable[[str], str]:
    try:
        import opencc
    except ImportError:
        raise ImportError(
            f"[clean.text].simplify_chinese needs OpenCC: {sys.executable} -m pip install opencc"
        ) from None
    return opencc.OpenCC("t2s").convert


@lru_cache(maxsize=1)
def _language_identifier() -> Any:
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        raise ImportError(
            f"language identification needs py3langid: {sys.executable} -m pip install py3langid"
        ) from None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


class _TextStep:
    """A text step whose `transform(text, record)` returns new text, a `Record`, or a drop `Reason`.

    Every step here looks at one record alone, so all are parallel-safe (run on any worker).
    """

    name = "text-step"
    parallel_safe = True

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="text")

    def check(self, record: Record) -> Record | str:
        result = self.transform(record.payload.decode("utf-8"), record)
        if isinstance(result, str) and not isinstance(result, Reason):
            return record.with_changes(payload=result.encode("utf-8"))
        return result

    def transform(self, text: str, record: Record) -> str | Record | Reason:
        raise NotImplementedError


class ControlCharacters(_TextStep):
    """Remove control and invisible format characters (keeps `\\n` and `\\t`); never drops."""

    name = "control-chars"

    def transform(self, text: str, record: Record) -> str:
        return remove_control_characters(text)


class SimplifyChinese(_TextStep):
    """Traditional → simplified Chinese with OpenCC's `t2s` (characters only, no phrase rewriting)."""

    name = "t2s"

    def __init__(self) -> None:
        _t2s()  # fail now, with the install line, not on the first batch

    def transform(self, text: str, record: Record) -> str:
        return _t2s()(text)


class IdentifyLanguage(_TextStep):
    """Note `meta["lang"] = {"code", "score"}` (py3langid, offline); drop others if `languages` is set.

    The score is py3langid's normalised probability of the chosen language. A configured
    code also accepts the varieties py3langid tells apart but a user means by it
    (`LANGUAGE_VARIETIES`): "zh" keeps Wu and Cantonese, which is how it labels about
    one Tang poem in ten.
    """

    name = "language"

    def __init__(self, languages: list[str] | None = None) -> None:
        known = set(_language_identifier().labels)
        unknown = sorted(set(languages or []) - known)
        if unknown:
            raise ValueError(
                f"[clean.text].languages: unknown code(s) {unknown}; use ISO 639-1 codes such as "
                f"'en', 'zh' (py3langid knows {len(known)})"
            )
        self.languages = languages
        self.accepted = {v for code in languages or [] for v in LANGUAGE_VARIETIES.get(code, (code,))}

    def transform(self, text: str, record: Record) -> Record | Reason:
        code, score = _language_identifier().classify(text)
        lang = {"code": code, "score": round(float(score), 3)}
        if self.languages is not None and code not in self.accepted:
            wanted = ", ".join(self.languages)
            return Reason(f"language: {code} ({score:.2f}) not in [{wanted}]", kind="language")
        return record.with_changes(meta={**record.meta, "lang": lang})


class GopherQuality(_TextStep):
    """Drop texts that break a Gopher quality rule; the reason names the rule, value and limit."""

    name = "quality"

    def __init__(self, cfg: TextCleanConfig | None = None) -> None:
        self.cfg = cfg or TextCleanConfig()

    def transform(self, text: str, record: Record) -> Record | Reason:
        if not text.strip():
            return Reason("gopher: empty text", kind="gopher: empty text")
        violation = gopher_violation(text, self.cfg)
        if violation is None:
            return record
        rule = re.split(r" [\d.]+ ", violation, maxsplit=1)[0]
        return Reason(f"gopher: {violation}", kind=f"gopher: {rule}")


def text_quality_steps(cfg: TextCleanConfig) -> list[_TextStep]:
    """`[clean.text]` steps between normalisation and dedup: control → t2s → language → quality."""
    steps: list[_TextStep] = [ControlCharacters()]
    if cfg.simplify_chinese:
        steps.append(SimplifyChinese())
    steps.append(IdentifyLanguage(cfg.languages))
    if cfg.quality:
        steps.append(GopherQuality(cfg))
    return steps
