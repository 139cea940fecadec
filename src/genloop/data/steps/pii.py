"""PII redaction: find e-mails, phones, 居民身份证号, bank cards and IPs in text; replace them by type.

Each type has a candidate pattern and, where the format has one, a validator:
a CN resident ID needs its GB 11643-1999 check character and a real birth date,
a bank card the Luhn checksum, an IPv6 address `ipaddress`'s parse. Checksums are
what keep ordinary numbers (order ids, timestamps, prices) out: a random 18-digit
number passes the ID check 1 time in 11, and then must also hold a valid date.

Phones are matched only in the shapes people write them: a CN mobile
(`1[3-9]` + 9 digits, optionally after +86/0086 and with space/dash groups), a
number with an explicit `+` country code, or a North-American `(415) 555-0123`.
A bare run of digits of another length is never a phone, so dates (2024-05-01,
20240501) and order numbers stay.

The functions are plain (`find_pii`, `redact`) so generation and the apps can
scrub model outputs and extracted slots with the same rules as the clean stage.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from genloop.data.pipeline import StepOutput
from genloop.data.record import Record

EMAIL, PHONE, CN_ID, BANK_CARD, IP = "EMAIL", "PHONE", "CN_ID", "BANK_CARD", "IP"
PII_TYPES = (EMAIL, CN_ID, BANK_CARD, PHONE, IP)
"""Also the priority when two candidates overlap: an e-mail's digits are not a phone, an ID is not a card."""


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One piece of PII: its type and where it is in the text (`text[start:end]`)."""

    type: str
    start: int
    end: int


# --- candidates -----------------------------------------------------------------------------------
# re.ASCII throughout: `\w` must not match CJK, or "电话13812345678" would look like one word, and
# `\d` only ASCII digits (the clean stage's NFKC has already folded full-width ones).

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@"  # local part
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])",  # domain
    re.ASCII,
)
# `(?<![\dA-Za-z])`: not the tail of a longer number or of a word (hex hashes, product codes).
_CN_ID = re.compile(r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])", re.ASCII)
_CARD = re.compile(
    r"(?<![\d-])(?:\d{13,19}|\d{4}(?:([ -])\d{4}){2}\1\d{4}(?:\1\d{1,3})?|\d{4}([ -])\d{6}\2\d{5})(?![\d-])",
    re.ASCII,
)
_CN_MOBILE = re.compile(r"(?<![\w+])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:([ -]?)\d{4}\1\d{4})(?!\d)", re.ASCII)
# `+CC` then 2-5 groups of digits (a group may be bracketed: +44 (0)20 7946 0958).
_INTERNATIONAL = re.compile(
    r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){2,5}(?![\d])", re.ASCII
)
_NANP = re.compile(r"(?<![\w(+-])(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[-.])[2-9]\d{2}[-.]\d{4}(?![\d-])", re.ASCII)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"  # 0-255 without leading zeros
_IPV4 = re.compile(rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\.?\d)", re.ASCII)
# Candidates only (hex groups and colons, maybe a dotted tail); `ipaddress` decides.
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])",
    re.ASCII,
)

# --- validators -----------------------------------------------------------------------------------

# GB 11643-1999: weights 2^(17-i) mod 11 for the 17 digits; the sum mod 11 indexes the check chars.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_cn_id(number: str) -> bool:
    """An 18-character 居民身份证号 with a correct check character and a real birth date (1900–today)."""
    if len(number) != 18 or not number[:17].isdigit() or number[0] == "0":
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != number[17].upper():
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return date(1900, 1, 1) <= born <= date.today()


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum every payment card number carries in its last digit."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def valid_bank_card(candidate: str) -> bool:
    """13–19 digits, Luhn-valid, starting with a banking industry digit (ISO/IEC 7812 MII 2–6 or 9).

    The MII check keeps out millisecond timestamps (`17…`) and most ids, of which 1 in 10
    pass Luhn by chance; 9 covers national schemes such as older Chinese domestic cards.
    """
    digits = re.sub(r"[ -]", "", candidate)
    return 13 <= len(digits) <= 19 and digits[0] in "234569" and len(set(digits)) > 1 and luhn_valid(digits)


def _plausible_phone(candidate: str) -> bool:
    # E.164 allows at most 15 digits; fewer than 8 is a short code or just a number with a plus.
    return 8 <= sum(char.isdigit() for char in candidate) <= 15


def _valid_ipv6(candidate: str) -> bool:
    if not any(char in "0123456789abcdefABCDEF" for char in candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _always(_: str) -> bool:
    return True


DETECTORS: tuple[tuple[str, re.Pattern[str], Callable[[str], bool]], ...] = (
    (EMAIL, _EMAIL, _always),
    (CN_ID, _CN_ID, valid_cn_id),
    (BANK_CARD, _CARD, valid_bank_card),
    (PHONE, _CN_MOBILE, _always),
    (PHONE, _INTERNATIONAL, _plausible_phone),
    (PHONE, _NANP, _always),
    (IP, _IPV4, _always),
    (IP, _IPV6, _valid_ipv6),
)


def find_pii(text: str) -> list[PiiMatch]:
    """Every piece of PII in `text`, in order, without overlaps (the higher-priority type wins)."""
    found: list[PiiMatch] = []
    for kind, pattern, valid in DETECTORS:
        for match in pattern.finditer(text):
            if valid(match.group()):
                found.append(PiiMatch(kind, match.start(), match.end()))
    priority = {kind: rank for rank, kind in enumerate(PII_TYPES)}
    chosen: list[PiiMatch] = []
    for candidate in sorted(found, key=lambda m: (priority[m.type], -(m.end - m.start), m.start)):
        if all(candidate.end <= kept.start or candidate.start >= kept.end for kept in chosen):
            chosen.append(candidate)
    return sorted(chosen, key=lambda m: m.start)


def redact_with_counts(text: str) -> tuple[str, dict[str, int]]:
    """`text` with each piece of PII replaced by `[TYPE]`, and how many of each type were replaced."""
    matches = find_pii(text)
    pieces: list[str] = []
    position = 0
    for match in matches:
        pieces += [text[position : match.start], f"[{match.type}]"]
        position = match.end
    pieces.append(text[position:])
    return "".join(pieces), dict(Counter(match.type for match in matches))


def redact(text: str) -> str:
    """`text` with e-mails, phones, CN IDs, bank cards and IPs replaced by `[EMAIL]`, `[PHONE]`, ..."""
    return redact_with_counts(text)[0]


class RedactPii:
    """Replace PII in text records by typed placeholders (never drops a record).

    The record's `meta["pii"]` holds its counts per type, and the step's report
    counters hold the totals (`pii:EMAIL`, ...) for the cleaning report.
    """

    name = "pii"
    parallel_safe = True  # depends on the record alone: may run on any worker

    def __call__(self, batch: list[Record]) -> StepOutput:
        output = StepOutput(kept=[])
        totals: Counter[str] = Counter()
        for record in batch:
            if record.modality != "text":
                output.kept.append(record)
                continue
            text, counts = redact_with_counts(record.payload.decode("utf-8"))
            if not counts:
                output.kept.append(record)
                continue
            totals.update(counts)
            meta = {**record.meta, "pii": counts}
            output.kept.append(record.with_changes(payload=text.encode("utf-8"), meta=meta))
        output.counters.update({f"pii:{kind}": n for kind, n in sorted(totals.items())})
        return output
