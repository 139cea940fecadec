"""The knowledge base: resolved questions with their answers, an intent label and a language.

Two sources:

* built in: chatterbot-corpus (DATA.md), English and Chinese. Each conversation's first two
  turns are one entry (question → answer); its topic file (`tech_support`, `computers`, ...)
  is the intent label. It is the nearest real support-style Q/A that ships in a package.
* yours: a CSV or JSONL of resolved tickets with columns `question` and `answer` (also
  accepted: `query`/`reply`), optional `intent` (or `topic`), `language`, `product`, `id`.
  Bytes are decoded as the clean stage does (a BOM, else UTF-8, else GB18030) and normalised
  (NFKC, whitespace).

Every entry gets a split by a stable hash of its question, so the held-out queries are the same
on every machine and in every run: `heldout` when sha256(question) mod 100 < `heldout_percent`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genloop.apps.tables import read_rows
from genloop.data.sources.builtin_text import package_dir
from genloop.data.steps.text import normalize_text
from genloop.errors import DataError

HELDOUT_PERCENT = 20
CORPUS_LANGUAGES = {"english": "en", "chinese": "zh"}
CORPUS_INSTALL = "pip install chatterbot-corpus PyYAML"
QUESTION_COLUMNS = ("question", "query")
ANSWER_COLUMNS = ("answer", "reply")
INTENT_COLUMNS = ("intent", "topic")
MIN_ENTRIES = 4


@dataclass(frozen=True)
class Entry:
    id: str
    question: str
    answer: str
    intent: str
    language: str
    """ISO 639-1 as given by the source ("en", "zh"), or "" when the source does not say."""
    split: str
    """"train" (its question is indexed and trains the intent model) or "heldout"."""
    source: str
    product: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def split_of(question: str, heldout_percent: int = HELDOUT_PERCENT) -> str:
    """ "heldout" for a stable `heldout_percent` % of questions, by sha256 of the normalised text."""
    bucket = int(hashlib.sha256(question.strip().lower().encode("utf-8")).hexdigest()[:8], 16) % 100
    return "heldout" if bucket < heldout_percent else "train"


def _entry(
    question: str,
    answer: str,
    *,
    intent: str,
    language: str,
    source: str,
    product: str = "",
    entry_id: str = "",
    heldout_percent: int = HELDOUT_PERCENT,
) -> Entry:
    question, answer = normalize_text(question), normalize_text(answer)
    digest = hashlib.sha256(f"{question}\n{answer}".encode()).hexdigest()[:12]
    return Entry(
        id=entry_id or digest,
        question=question,
        answer=answer,
        intent=intent or "general",
        language=language,
        split=split_of(question, heldout_percent),
        source=source,
        product=product,
    )


def _unique(entries: Iterable[Entry]) -> list[Entry]:
    """The first entry of each question (the corpus repeats a few, e.g. greetings across topics)."""
    seen: set[str] = set()
    kept = []
    for entry in entries:
        key = entry.question.lower()
        if key not in seen and entry.question and entry.answer:
            seen.add(key)
            kept.append(entry)
    return kept


def corpus_entries(
    languages: Iterable[str] = ("en", "zh"), heldout_percent: int = HELDOUT_PERCENT
) -> list[Entry]:
    """chatterbot-corpus as entries: the first question → answer pair of every conversation."""
    import yaml

    root = package_dir("chatterbot_corpus", source="support knowledge base", install=CORPUS_INSTALL) / "data"
    wanted = set(languages)
    entries = []
    for folder, code in CORPUS_LANGUAGES.items():
        if code not in wanted:
            continue
        for path in sorted((root / folder).glob("*.yml")):
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for turns in document.get("conversations") or []:
                if isinstance(turns, list) and len(turns) >= 2:
                    entries.append(
                        _entry(
                            str(turns[0]),
                            str(turns[1]),
                            intent=path.stem,
                            language=code,
                            source=f"chatterbot-corpus/{folder}/{path.name}",
                            heldout_percent=heldout_percent,
                        )
                    )
    if not entries:
        raise DataError(f"no conversations under {root}", hint=f"reinstall the corpus: {CORPUS_INSTALL}")
    return _unique(entries)


# ---- your tickets -------------------------------------------------------------------------------


def _column(row: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = row.get(name)
        if value is not None and str(value).strip():
            return str(value)
    return ""


def ticket_entries(path: Path, heldout_percent: int = HELDOUT_PERCENT) -> list[Entry]:
    """Entries from your resolved tickets; a DataError names the file, line and what to fix."""
    rows = read_rows(path, what="ticket", example='{"question": "...", "answer": "..."}')
    if not rows:
        raise DataError(
            f"{path}: no tickets in the file", hint="one row per resolved ticket: question,answer"
        )
    columns = set().union(*(row.keys() for _, row in rows))
    for names in (QUESTION_COLUMNS, ANSWER_COLUMNS):
        if not columns & set(names):
            found = ", ".join(sorted(str(c) for c in columns if c)) or "(none)"
            raise DataError(
                f"{path}: no column {' or '.join(repr(n) for n in names)}; columns found: {found}",
                hint="name the columns question,answer (optional: intent, language, product, id)",
            )
    entries = []
    for number, row in rows:
        question, answer = _column(row, QUESTION_COLUMNS), _column(row, ANSWER_COLUMNS)
        if not question.strip() or not answer.strip():
            missing = "question" if not question.strip() else "answer"
            raise DataError(
                f"{path}:{number}: empty {missing}", hint="every ticket needs a question and an answer"
            )
        entries.append(
            _entry(
                question,
                answer,
                intent=_column(row, INTENT_COLUMNS),
                language=_column(row, ("language",)),
                source=f"{path.name}:{number}",
                product=_column(row, ("product",)),
                entry_id=_column(row, ("id",)),
                heldout_percent=heldout_percent,
            )
        )
    entries = _unique(entries)
    if len(entries) < MIN_ENTRIES:
        raise DataError(
            f"{path}: {len(entries)} distinct ticket(s); a knowledge base needs {MIN_ENTRIES}+",
            hint="add more resolved tickets",
        )
    return entries


def entries_jsonl(entries: Iterable[Entry]) -> bytes:
    """JSONL bytes of `entries` (the caller writes them atomically)."""
    return "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in entries).encode("utf-8")


def read_entries(path: Path) -> list[Entry]:
    return [Entry(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]
