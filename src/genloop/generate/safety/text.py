"""Text safety checks: blocked terms, offensive language, PII, verbatim copies of training text.

    name        fails when                                              needs
    blocklist   a blocked term occurs (built-in en/zh lists + yours)    nothing (default)
    pii         an e-mail, phone, 居民身份证号, bank card or IP occurs  nothing (default)
    verbatim    a span of ≥ min_tokens tokens is in the training text   the model's training data (default)
    profanity   a sentence scores ≥ threshold (English classifier)      alt-profanity-check (extra)

English terms match as whole words, case-insensitively; Chinese terms as substrings (Chinese
has no spaces), both after NFKC (full-width Ｆｕｃｋ → Fuck) and traditional → simplified
(雞巴 → 鸡巴), done character by character so a reason's position is the artifact's own.
Reasons name the kind of problem and where; the PII check never repeats the PII itself.

    [channels.public]
    safety.text = ["blocklist", {name = "verbatim", min_tokens = 20}, {name = "profanity", threshold = 0.7}]
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from genloop.errors import GenloopError, MissingDependencyError
from genloop.evaluate.verbatim import NgramIndex
from genloop.generate.artifact import Artifact
from genloop.generate.safety.registry import DEFAULT_CHECKS, SafetyContext, Verdict, register_check
from genloop.generate.safety.training_data import describe, training_datasets, training_records

BUILTIN_LANGUAGES = ("en", "zh")
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# An English term is a whole word: no Latin letter or digit right before or after it.
_WORD_EDGE = "A-Za-z0-9\u00c0-\u024f"
_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")
TEXT = frozenset({"text"})


@cache
def _to_simplified() -> Callable[[str], str] | None:
    try:
        import opencc
    except ImportError:  # a base dependency; without it traditional text is matched as written
        return None
    convert: Callable[[str], str] = opencc.OpenCC("t2s").convert
    return convert


def normalise(text: str) -> str:
    """NFKC and traditional → simplified, each only where a character stays one character.

    Keeping the length keeps positions: char 12 of the result is char 12 of `text`.
    """
    text = "".join(
        folded if len(folded := unicodedata.normalize("NFKC", char)) == 1 else char for char in text
    )
    convert = _to_simplified()
    if convert is not None and _CJK.search(text):
        simplified = convert(text)
        if len(simplified) == len(text):
            text = simplified
    return text


# ---- blocklist -------------------------------------------------------------------------------


def read_terms(text: str) -> list[str]:
    """Terms of a blocklist file: one a line, `#` starts a comment, blank lines skipped."""
    return [term for line in text.splitlines() if (term := line.split("#", 1)[0].strip())]


def builtin_terms(language: str) -> list[str]:
    if language not in BUILTIN_LANGUAGES:
        raise ValueError(f"no built-in blocklist for language {language!r} (built in: en, zh)")
    source = resources.files("genloop.generate.safety") / "blocklists" / f"{language}.txt"
    return read_terms(source.read_text(encoding="utf-8"))


def _pattern(term: str) -> str:
    """A Chinese term as a substring; another as whole word(s), `*` at the end = any continuation."""
    if _CJK.search(term):
        return re.escape(term)
    wildcard = term.endswith("*")
    words = term.rstrip("*").split()
    if not words:
        raise ValueError(f"blocklist term {term!r} has no letters (a lone * would block every word)")
    body = r"\s+".join(re.escape(word) for word in words) + (f"[{_WORD_EDGE}]*" if wildcard else "")
    return rf"(?<![{_WORD_EDGE}]){body}(?![{_WORD_EDGE}])"


class Blocklist:
    name = "blocklist"
    modalities = TEXT

    def __init__(self, terms: Sequence[str], sources: str) -> None:
        self.terms = sorted({normalise(term) for term in terms}, key=len, reverse=True)
        self.sources = sources
        if not self.terms:
            raise ValueError("the blocklist is empty: name languages, words or files")
        # one group per term, so a match says which term it was (longest first: 操你妈 before 操你)
        self._regex = re.compile(
            "|".join(f"(?P<t{i}>{_pattern(term)})" for i, term in enumerate(self.terms)), re.IGNORECASE
        )

    def check(self, artifact: Artifact, context: SafetyContext) -> Verdict:
        text = normalise(artifact.text)
        hits = [
            {"term": self.terms[int(str(m.lastgroup)[1:])], "text": artifact.text[m.start() : m.end()],
             "start": m.start()}
            for m in self._regex.finditer(text)
        ]  # fmt: skip
        details: dict[str, Any] = {"terms_checked": len(self.terms), "lists": self.sources, "hits": hits}
        if not hits:
            return Verdict(self.name, True, "no blocked terms", score=0.0, details=details)
        shown = "; ".join(f"{hit['term']!r} at char {hit['start']}" for hit in hits[:5])
        more = f" (+{len(hits) - 5} more)" if len(hits) > 5 else ""
        return Verdict(
            self.name, False, f"{len(hits)} blocked term(s): {shown}{more}", float(len(hits)), details
        )


@register_check("blocklist")
def blocklist(
    *, languages: Sequence[str] = BUILTIN_LANGUAGES, words: Sequence[str] = (), files: Sequence[str] = ()
) -> Blocklist:
    """Built-in lists of `languages` (en, zh; [] for none), plus `words` and the terms of `files`."""
    if isinstance(languages, str) or isinstance(words, str) or isinstance(files, str):
        raise ValueError("languages, words and files are lists, e.g. languages = ['en']")
    terms = [term for language in languages for term in builtin_terms(language)]
    terms += [word.strip() for word in words if word.strip()]
    for name in files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise GenloopError(
                f"safety check 'blocklist': blocklist file {path} does not exist",
                hint="give a UTF-8 file with one term a line (a path relative to where genloop runs)",
            )
        terms += read_terms(path.read_text(encoding="utf-8"))
    sources = [*(f"built-in {language}" for language in languages), *map(str, files)]
    return Blocklist(terms, ", ".join(sources + (["words"] if words else [])))


# ---- offensive-language classifier (extra) -----------------------------------------------------


class Profanity:
    name = "profanity"
    modalities = TEXT

    def __init__(self, threshold: float, predict_prob: Callable[[list[str]], Any]) -> None:
        self.threshold = threshold
        self._predict_prob = predict_prob

    def check(self, artifact: Artifact, context: SafetyContext) -> Verdict:
        # The classifier was trained on short comments: score each sentence, keep the worst.
        sentences = [
            (m.start() + len(m.group()) - len(m.group().lstrip()), m.group().strip())
            for m in _SENTENCE.finditer(artifact.text)
            if m.group().strip()
        ]
        if not sentences:
            return Verdict(self.name, True, "no text to score", score=0.0)
        scores = [float(p) for p in self._predict_prob([sentence for _, sentence in sentences])]
        worst = max(range(len(scores)), key=scores.__getitem__)
        details = {"threshold": self.threshold, "sentences": len(sentences), "worst_sentence": worst}
        if scores[worst] < self.threshold:
            reason = f"no offensive language (highest sentence score {scores[worst]:.2f} < {self.threshold})"
            return Verdict(self.name, True, reason, scores[worst], details)
        flagged = sum(score >= self.threshold for score in scores)
        reason = (
            f"offensive language: {flagged} sentence(s) score ≥ {self.threshold}, the worst "
            f"{scores[worst]:.2f} (sentence {worst + 1}, at char {sentences[worst][0]})"
        )
        return Verdict(self.name, False, reason, scores[worst], details)


@register_check("profanity")
def profanity(*, threshold: float = 0.5) -> Profanity:
    """alt-profanity-check's probability per sentence (English); 0.5 is the library's own cut."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    try:
        from profanity_check import predict_prob
    except ImportError as error:
        raise MissingDependencyError(
            "safety check 'profanity' needs the offensive-language classifier alt-profanity-check",
            hint="pip install alt-profanity-check  (or drop 'profanity' from the channel's safety.text)",
        ) from error
    return Profanity(threshold, predict_prob)


# ---- PII -----------------------------------------------------------------------------------------


class Pii:
    name = "pii"
    modalities = TEXT

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = frozenset(kinds)

    def check(self, artifact: Artifact, context: SafetyContext) -> Verdict:
        from genloop.data.steps.pii import find_pii

        found = [match for match in find_pii(artifact.text) if match.type in self.kinds]
        if not found:
            return Verdict(self.name, True, "no PII found", score=0.0, details={"kinds": {}})
        counts = Counter(match.type for match in found)
        where = ", ".join(f"{match.type} at char {match.start}" for match in found[:5])
        details = {"kinds": dict(counts), "spans": [[m.type, m.start, m.end] for m in found]}
        kinds = ", ".join(f"{kind} ×{count}" for kind, count in sorted(counts.items()))
        return Verdict(self.name, False, f"PII found: {kinds} ({where})", float(len(found)), details)


@register_check("pii")
def pii(*, kinds: Sequence[str] | None = None) -> Pii:
    """The clean stage's detectors (genloop.data.steps.pii); `kinds` limits which types count."""
    from genloop.data.steps.pii import PII_TYPES

    chosen = list(PII_TYPES) if kinds is None else list(kinds)
    unknown = sorted(set(chosen) - set(PII_TYPES))
    if unknown or isinstance(kinds, str):
        raise ValueError(f"unknown PII kinds {unknown or kinds!r}; known: {', '.join(PII_TYPES)}")
    return Pii(chosen)


# ---- verbatim copies of training text ----------------------------------------------------------


class Verbatim:
    name = "verbatim"
    modalities = TEXT

    def __init__(self, *, min_tokens: int, n: int, max_ngram_share: float | None) -> None:
        self.min_tokens, self.n, self.max_ngram_share = min_tokens, n, max_ngram_share

    def index(self, context: SafetyContext) -> NgramIndex | str:
        """The n-gram index of the training text (built once per job), or why there is none."""
        key = f"verbatim-index:{context.model_version_id}:{self.n}"
        if key not in context.cache:
            texts = [
                normalise(r.payload.decode("utf-8", "replace")) for r in training_records(context, "text")
            ]
            try:
                context.cache[key] = NgramIndex.build(texts, n=self.n)
            except GenloopError:  # the only one build raises (n ≥ 1 is checked): too little text
                context.cache[key] = (
                    f"model {context.model_version_id} has no recorded training text of {self.n}+ tokens"
                )
        index: NgramIndex | str = context.cache[key]
        return index

    def check(self, artifact: Artifact, context: SafetyContext) -> Verdict:
        index = self.index(context)
        if isinstance(index, str):
            return Verdict(self.name, True, f"not checked: {index}", details={"checked": False})
        overlap = index.overlap(normalise(artifact.text))
        details = {
            "checked": True, "longest_match": overlap.longest_match, "tokens": overlap.tokens,
            "ngram_share": overlap.ngram_share, "n": self.n, "min_tokens": self.min_tokens,
            "training": describe(training_datasets(context)),
        }  # fmt: skip
        share = f"{overlap.ngram_share:.0%} of its {self.n}-grams occur in training"
        if overlap.longest_match >= self.min_tokens:
            reason = (
                f"copies {overlap.longest_match} tokens verbatim from the training text "
                f"(limit {self.min_tokens - 1}); {share}"
            )
            return Verdict(self.name, False, reason, float(overlap.longest_match), details)
        if self.max_ngram_share is not None and overlap.ngrams and overlap.ngram_share > self.max_ngram_share:
            reason = f"stitched from training text: {share} (limit {self.max_ngram_share:.0%})"
            return Verdict(self.name, False, reason, float(overlap.longest_match), details)
        longest = f"longest shared span {overlap.longest_match} tokens" if overlap.longest_match else (
            f"no shared span of {self.n}+ tokens"
        )  # fmt: skip
        return Verdict(
            self.name, True, f"no verbatim copy ({longest}; {share})", float(overlap.longest_match), details
        )


@register_check("verbatim")
def verbatim(*, min_tokens: int = 12, n: int = 8, max_ngram_share: float | None = None) -> Verbatim:
    """Fail at a span of ≥ `min_tokens` tokens (a CJK character is a token) found in the training text.

    `n` is the index's resolution (spans shorter than n are not seen); `max_ngram_share`
    optionally also fails a text most of whose n-grams occur in training (a patchwork copy).
    """
    if n < 1 or min_tokens < n:
        raise ValueError(f"need 1 ≤ n ≤ min_tokens, got n = {n}, min_tokens = {min_tokens}")
    if max_ngram_share is not None and not 0.0 <= max_ngram_share < 1.0:
        raise ValueError(f"max_ngram_share must be in [0, 1), got {max_ngram_share}")
    return Verbatim(min_tokens=min_tokens, n=n, max_ngram_share=max_ngram_share)


for _name in ("blocklist", "pii", "verbatim"):  # cheap, no extra packages
    if _name not in DEFAULT_CHECKS["text"]:
        DEFAULT_CHECKS["text"].append(_name)
