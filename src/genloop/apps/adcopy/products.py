"""The product table: what to write copy for, and the constraints every line must honour.

    id, name, category, features, audience, tone, language, must_include, banned, max_length

One product a row (CSV/TSV, header on line 1) or a line (JSONL). Required: `id`, `name`,
`language` (`en` or `zh`) and `max_length` (a positive whole number: words for English,
characters for Chinese). The list fields `features`, `must_include` and `banned` are lists in
JSONL, and `;`- or `|`-separated strings in CSV ("waterproof; 12 h battery"). Headers are
matched case-insensitively, `-` as `_`, and a few synonyms are read (`lang`, `max_len`,
`required`, `banned_words` …); an unknown column is an error, because a misspelt
`must_inclde` would otherwise drop a constraint without a word.

Every problem is a DataError naming the file, the line and the field, and nothing is read
half: either every product is valid or the caller gets the first problem.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genloop.apps.tables import header_keys, read_rows
from genloop.errors import DataError

LANGUAGES = ("en", "zh")
REQUIRED = ("id", "name", "language", "max_length")
OPTIONAL = ("category", "features", "audience", "tone", "must_include", "banned")
LIST_FIELDS = ("features", "must_include", "banned")
SYNONYMS = {
    "lang": "language",
    "product": "name",
    "product_name": "name",
    "product_id": "id",
    "max_len": "max_length",
    "length": "max_length",
    "max_words": "max_length",
    "max_chars": "max_length",
    "required": "must_include",
    "required_words": "must_include",
    "keywords": "must_include",
    "must_have": "must_include",
    "banned_words": "banned",
    "forbidden": "banned",
    "feature": "features",
}
LIST_SEPARATORS = re.compile(r"[;|；]")
EXAMPLE = (
    '{"id": "p1", "name": "TrailLite", "category": "shoes", "features": ["light", "grippy"], '
    '"audience": "hikers", "tone": "bold", "language": "en", "must_include": ["TrailLite"], '
    '"banned": ["cheap"], "max_length": 12}'
)
HINT = f"columns: {', '.join(REQUIRED + OPTIONAL)} (required: {', '.join(REQUIRED)})"


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    language: str
    """"en" (length in words) or "zh" (length in characters)."""
    max_length: int
    category: str = ""
    features: tuple[str, ...] = ()
    audience: str = ""
    tone: str = ""
    must_include: tuple[str, ...] = ()
    banned: tuple[str, ...] = ()
    where: str = ""
    """file:line the product came from (for messages)."""

    @property
    def unit(self) -> str:
        return "characters" if self.language == "zh" else "words"

    def attributes(self) -> dict[str, Any]:
        """What conditions generation and the ranker: everything but the constraints' bookkeeping."""
        return {
            "category": self.category,
            "tone": self.tone,
            "audience": self.audience,
            "language": self.language,
            "features": list(self.features),
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in LIST_FIELDS:
            data[name] = list(data[name])
        return data


def _canonical(key: str) -> str:
    return SYNONYMS.get(key, key)


def _list_field(value: Any, where: str, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = LIST_SEPARATORS.split(value)
    elif isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        items = [str(item) for item in value]
    else:
        raise DataError(
            f"{where}: field {field!r} must be a list of strings (got {value!r})",
            hint='e.g. ["waterproof", "12 h battery"] in JSONL, or "waterproof; 12 h battery" in CSV',
        )
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def _text_field(value: Any, where: str, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError(f"{where}: field {field!r} must be text (got {value!r})", hint=HINT)
    return str(value).strip()


def _max_length(value: Any, where: str) -> int:
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else None
    if text is None or not re.fullmatch(r"\+?\d+", text) or int(text) < 1:
        raise DataError(
            f"{where}: field 'max_length' must be a positive whole number (got {value!r})",
            hint="words for English products, characters for Chinese ones, e.g. 12 or 30",
        )
    return int(text)


def _language(value: Any, where: str) -> str:
    code = _text_field(value, where, "language").lower().replace("_", "-")
    code = {"english": "en", "chinese": "zh", "中文": "zh", "英文": "en"}.get(code, code)
    if code.split("-")[0] not in LANGUAGES:
        raise DataError(
            f"{where}: field 'language' is {value!r}; genloop writes ad copy in {' or '.join(LANGUAGES)}",
            hint="use en (English: length in words) or zh (Chinese: length in characters)",
        )
    return code.split("-")[0]


def product_from_row(row: dict[str, Any], where: str) -> Product:
    """One validated product; `row`'s keys already canonical. A DataError names `where` and the field."""
    for field in REQUIRED:
        if field not in row or row[field] is None or not str(row[field]).strip():
            raise DataError(f"{where}: field {field!r} is missing or empty", hint=HINT)
    return Product(
        id=_text_field(row["id"], where, "id"),
        name=_text_field(row["name"], where, "name"),
        language=_language(row["language"], where),
        max_length=_max_length(row["max_length"], where),
        category=_text_field(row.get("category"), where, "category"),
        features=_list_field(row.get("features"), where, "features"),
        audience=_text_field(row.get("audience"), where, "audience"),
        tone=_text_field(row.get("tone"), where, "tone"),
        must_include=_list_field(row.get("must_include"), where, "must_include"),
        banned=_list_field(row.get("banned"), where, "banned"),
        where=where,
    )


def read_products(path: Path) -> list[Product]:
    """Every product of a CSV/TSV/JSONL table, validated; the first problem is a DataError."""
    return products_from_rows(read_rows(path, what="product table", example=EXAMPLE), path)


def product_from_json(data: dict[str, Any]) -> Product:
    """A product as `Product.to_json` wrote it (a stored candidate's params["constraints"])."""
    known = {key: data[key] for key in (*REQUIRED, *OPTIONAL, "where") if key in data}
    for name in LIST_FIELDS:
        known[name] = tuple(known.get(name) or ())
    return Product(**known)


def products_from_rows(rows: list[tuple[int, dict[str, Any]]], path: Path) -> list[Product]:
    """Every product of (line, row) pairs read from `path` (a file, or a request's name for its table)."""
    if not rows:
        raise DataError(f"{path}: no products in the file", hint=f"one product a row; {HINT}")
    known = set(REQUIRED + OPTIONAL)
    unknown = sorted(key for key in header_keys(path, rows) if _canonical(key) not in known)
    if unknown:
        raise DataError(
            f"{path}: unknown column(s) {', '.join(map(repr, unknown))}",
            hint=f"a misspelt column would drop a constraint silently; {HINT}",
        )
    canonical_rows = [(line, {_canonical(k): v for k, v in row.items()}) for line, row in rows]
    missing = [field for field in REQUIRED if not any(field in row for _, row in canonical_rows)]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}", hint=HINT)
    products: list[Product] = []
    seen: dict[str, str] = {}
    for line, row in canonical_rows:
        product = product_from_row(row, f"{path}:{line}")
        if product.id in seen:
            raise DataError(
                f"{product.where}: product id {product.id!r} already used at {seen[product.id]}",
                hint="give every product its own id",
            )
        seen[product.id] = product.where
        products.append(product)
    return products
