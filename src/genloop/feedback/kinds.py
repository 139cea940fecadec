"""What a feedback event may be: its kinds and the checks every event passes before it is stored.

    kind        value        text                              dedup (see dedup.py)
    impression  -            -                                 one per viewer+publication per 30 min
    click       -            -                                 one per viewer+publication per 30 min
    like        -            -                                 latest reaction (like/dislike) wins
    dislike     -            -                                 latest reaction (like/dislike) wins
    rating      1..5 (whole) -                                 latest rating wins
    edit        -            the corrected text (required)     none: every edit is training data
    comment     -            what the viewer wrote (required)  none
    flag        -            the reason (optional)             none

Text is capped at `MAX_TEXT_BYTES` of UTF-8 and may not contain NUL (PostgreSQL cannot
store it). Viewer ids are pseudonymous tokens (`VIEWER_ID_PATTERN`): the gallery's cookie,
an integration's own id, or `import:<file-hash>:<row>:<n>` for imported counts.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from genloop.errors import GenloopError

FEEDBACK_KINDS: tuple[str, ...] = (
    "impression",
    "click",
    "like",
    "dislike",
    "rating",
    "edit",
    "comment",
    "flag",
)
TEXT_REQUIRED = frozenset({"edit", "comment"})
TEXT_ALLOWED = TEXT_REQUIRED | {"flag"}
RATING_RANGE = (1, 5)
MAX_TEXT_BYTES = 8 * 1024
MAX_META_BYTES = 2 * 1024
MAX_VIEWER_ID_CHARS = 64
MAX_IDEMPOTENCY_KEY_CHARS = 128
VIEWER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
RESERVED_KEY_PREFIXES = ("dedup:", "import:")
"""Idempotency keys genloop derives itself; clients may not send keys that start so."""


class FeedbackValidationError(GenloopError):
    """An event that cannot be stored as sent (kind, value, text, viewer id, key)."""


def validate_event(
    *,
    kind: str,
    viewer_id: str,
    idempotency_key: str | None = None,
    value: float | None = None,
    text: str | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Raise `FeedbackValidationError` naming the first thing wrong with the event."""
    if kind not in FEEDBACK_KINDS:
        raise FeedbackValidationError(
            f"unknown feedback kind {kind!r}", hint=f"allowed kinds: {', '.join(FEEDBACK_KINDS)}"
        )
    if not VIEWER_ID_PATTERN.fullmatch(viewer_id or ""):
        raise FeedbackValidationError(
            f"viewer id must be 1-{MAX_VIEWER_ID_CHARS} characters of A-Z a-z 0-9 _ . : - "
            f"(got {len(viewer_id or '')} characters)",
            hint="use a pseudonymous token (a random id per browser), never a name or an e-mail address",
        )
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise FeedbackValidationError(
            f"idempotency key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters (got {len(idempotency_key)})"
        )
    _validate_value(kind, value)
    _validate_text(kind, text)
    if meta is not None and _utf8_size(json.dumps(meta, ensure_ascii=False), "meta") > MAX_META_BYTES:
        raise FeedbackValidationError(f"event meta is over {MAX_META_BYTES} bytes as JSON")


def _utf8_size(text: str, what: str) -> int:
    """Bytes of UTF-8; a lone surrogate (JSON allows "\\ud800") is refused, not a 500 later."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise FeedbackValidationError(
            f"feedback {what} is not valid Unicode (it has an unpaired surrogate)",
            hint="send UTF-8 text; escape sequences \\ud800-\\udfff must come in pairs",
        ) from None


def _validate_value(kind: str, value: float | None) -> None:
    if kind != "rating":
        if value is not None:
            raise FeedbackValidationError(
                f"a {kind} event takes no value (got {value!r})", hint="only `rating` events carry a value"
            )
        return
    low, high = RATING_RANGE
    if value is None or not math.isfinite(value) or value != int(value) or not low <= value <= high:
        raise FeedbackValidationError(
            f"a rating must be a whole number from {low} to {high} (got {value!r})",
            hint='send e.g. {"kind": "rating", "value": 4}',
        )


def _validate_text(kind: str, text: str | None) -> None:
    if text is None or not text.strip():
        if kind in TEXT_REQUIRED:
            what = "the corrected text" if kind == "edit" else "the comment"
            raise FeedbackValidationError(
                f"a {kind} event needs `text` ({what})", hint=f'send e.g. {{"kind": "{kind}", "text": "..."}}'
            )
        if text is not None and kind not in TEXT_ALLOWED:
            raise FeedbackValidationError(f"a {kind} event takes no text")
        return
    if kind not in TEXT_ALLOWED:
        raise FeedbackValidationError(
            f"a {kind} event takes no text", hint=f"text goes with: {', '.join(sorted(TEXT_ALLOWED))}"
        )
    size = _utf8_size(text, "text")
    if size > MAX_TEXT_BYTES:
        raise FeedbackValidationError(
            f"feedback text is {size} bytes of UTF-8; the limit is {MAX_TEXT_BYTES}",
            hint="shorten the text (an edit should be the corrected item, not a document)",
        )
    if "\x00" in text:
        raise FeedbackValidationError("feedback text contains a NUL character; remove it")
