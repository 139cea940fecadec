"""Slot extraction: the facts a reply needs, by rules plus the data stage's PII detectors.

    type          found by                                              value (normalised)
    EMAIL, PHONE, genloop.data.steps.pii (checksums, dates, shapes)     the text as written
    CN_ID, BANK_CARD, IP
    ORDER         "order #A1234", "order number: 2024-0012", "订单号 E2024…"  the id, upper-cased
    PRODUCT       a word list (built in + your tickets' `product` column)    the list's spelling
    DATE          2024-05-01, 2024/5/1, 5/1/2024, May 3 2024, 3 May, 2024年5月1日, 5月1日,
                  today / yesterday / tomorrow, 今天 / 昨天 / 明天       yyyy-mm-dd, mm-dd, or the word
    AMOUNT        $12.50, 12.50 USD, ¥199, 199元, RMB 199, €5, 99块           "12.50 USD", "199 CNY"

PII is found first and blanked (same length, so positions stay) before the other rules run:
the digits of a phone number are never also a date or an amount. A slot keeps its raw value
for the systems behind the reply; `masked` is what may be shown (`[PHONE]`, `[EMAIL]`, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from genloop.data.steps.pii import PII_TYPES, find_pii

ORDER, PRODUCT, DATE, AMOUNT = "ORDER", "PRODUCT", "DATE", "AMOUNT"
SLOT_TYPES = (ORDER, *PII_TYPES, PRODUCT, DATE, AMOUNT)
BUILTIN_PRODUCTS = (
    "laptop",
    "computer",
    "desktop",
    "tablet",
    "smartphone",
    "phone",
    "router",
    "modem",
    "printer",
    "monitor",
    "keyboard",
    "mouse",
    "headphones",
    "earbuds",
    "charger",
    "battery",
    "camera",
    "speaker",
    "smartwatch",
    "watch",
    "hard drive",
    "usb drive",
    "software",
    "app",
    "subscription",
    "account",
    "笔记本电脑",
    "笔记本",
    "电脑",
    "平板",
    "手机",
    "路由器",
    "打印机",
    "显示器",
    "键盘",
    "鼠标",
    "耳机",
    "充电器",
    "电池",
    "相机",
    "音箱",
    "手表",
    "硬盘",
    "U盘",
    "软件",
    "会员",
    "账号",
)

_ORDER = re.compile(
    r"(?:\border(?:\s+(?:no\.?|number|id))?|订单(?:号|编号)?)\s*(?:is\s+)?[:：#]?\s*#?"
    r"(?P<id>(?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9-]{3,30})",
    re.IGNORECASE,
)
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]"), "ymd"),
    (re.compile(r"(?<!\d)(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]"), "md"),
    (re.compile(r"(?<![\d/.-])(?P<y>(?:19|20)\d\d)[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?![\d/.-])"), "ymd"),
    (re.compile(r"(?<![\d/.-])(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>(?:19|20)\d\d)(?![\d/.-])"), "ymd"),
    (
        re.compile(
            rf"\b(?P<mon>{_MONTH})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<y>(?:19|20)\d\d))?\b",
            re.IGNORECASE,
        ),
        "mon",
    ),
    (
        re.compile(
            rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon>{_MONTH})\.?(?:,?\s+(?P<y>(?:19|20)\d\d))?\b",
            re.IGNORECASE,
        ),
        "mon",
    ),
    (
        re.compile(r"\b(?P<w>today|yesterday|tomorrow)\b|(?P<zh>今天|昨天|明天|前天|后天)", re.IGNORECASE),
        "word",
    ),
)
_CURRENCY_SYMBOLS = {"$": "USD", "US$": "USD", "¥": "CNY", "￥": "CNY", "€": "EUR", "£": "GBP"}
_CURRENCY_WORDS = {
    "usd": "USD",
    "dollars": "USD",
    "dollar": "USD",
    "bucks": "USD",
    "cny": "CNY",
    "rmb": "CNY",
    "yuan": "CNY",
    "元": "CNY",
    "块": "CNY",
    "块钱": "CNY",
    "人民币": "CNY",
    "eur": "EUR",
    "euros": "EUR",
    "euro": "EUR",
    "gbp": "GBP",
    "pounds": "GBP",
    "美元": "USD",
    "欧元": "EUR",
}
_NUMBER = r"(?P<n>\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?)"
_WORDS = "|".join(sorted(map(re.escape, _CURRENCY_WORDS), key=len, reverse=True))
_AMOUNTS = (
    re.compile(r"(?P<c>US\$|[$¥￥€£])\s?" + _NUMBER + r"(?![\d.])"),
    re.compile(r"\b(?P<c>RMB|CNY|USD|EUR|GBP)\s?" + _NUMBER + r"(?![\d.])", re.IGNORECASE),
    re.compile(r"(?<![A-Za-z0-9.$¥￥€£])" + _NUMBER + rf"\s?(?P<w>{_WORDS})(?![A-Za-z])", re.IGNORECASE),
)


@dataclass(frozen=True)
class Slot:
    type: str
    value: str
    """Normalised value (see the table above); for PII the raw text, never to be shown."""
    start: int
    end: int

    @property
    def is_pii(self) -> bool:
        return self.type in PII_TYPES

    @property
    def masked(self) -> str:
        """What may be shown: the value, or `[TYPE]` for PII."""
        return f"[{self.type}]" if self.is_pii else self.value

    def to_json(self, *, include_pii: bool = False) -> dict[str, Any]:
        value = self.value if include_pii or not self.is_pii else self.masked
        return {"type": self.type, "value": value, "start": self.start, "end": self.end, "pii": self.is_pii}


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _date_value(match: re.Match[str], shape: str) -> str | None:
    parts = match.groupdict()
    if shape == "word":
        return (parts.get("w") or parts.get("zh") or "").lower()
    month = _MONTHS[parts["mon"].lower().rstrip(".")] if shape == "mon" else int(parts["m"])
    day = int(parts["d"])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    year = parts.get("y")
    return f"{int(year):04d}-{month:02d}-{day:02d}" if year else f"{month:02d}-{day:02d}"


def _amount_value(match: re.Match[str]) -> str:
    parts = match.groupdict()
    number = parts["n"].replace(",", "")
    if parts.get("w"):
        currency = _CURRENCY_WORDS[parts["w"].lower()]
    else:
        symbol = parts["c"]
        currency = _CURRENCY_SYMBOLS.get(symbol) or _CURRENCY_WORDS[symbol.lower()]
    return f"{number} {currency}"


def _non_overlapping(found: list[Slot], taken: list[tuple[int, int]]) -> list[Slot]:
    kept = []
    for slot in sorted(found, key=lambda s: (s.start, -(s.end - s.start))):
        if all(slot.end <= start or slot.start >= end for start, end in taken):
            kept.append(slot)
            taken.append((slot.start, slot.end))
    return kept


def extract_slots(text: str, products: Iterable[str] = BUILTIN_PRODUCTS) -> list[Slot]:
    """Every slot in `text`, in order of position, without overlaps (PII, then orders, then the rest)."""
    slots = [Slot(m.type, text[m.start : m.end], m.start, m.end) for m in find_pii(text)]
    taken = [(slot.start, slot.end) for slot in slots]
    rest = _blank(text, taken)
    orders = [Slot(ORDER, m.group("id").upper(), m.start("id"), m.end("id")) for m in _ORDER.finditer(rest)]
    slots += _non_overlapping(orders, taken)
    found: list[Slot] = []
    for pattern, shape in _DATES:
        for match in pattern.finditer(rest):
            value = _date_value(match, shape)
            if value:
                found.append(Slot(DATE, value, match.start(), match.end()))
    for pattern in _AMOUNTS:
        found += [Slot(AMOUNT, _amount_value(m), m.start(), m.end()) for m in pattern.finditer(rest)]
    slots += _non_overlapping(found, taken)
    pii_starts = [slot.start for slot in slots if slot.is_pii]
    slots += _non_overlapping(_products(rest, products, pii_starts), taken)
    return sorted(slots, key=lambda s: s.start)


_CONTACT_WORDS = frozenset({"phone", "smartphone", "手机"})
_CONTACT_TAIL = re.compile(r"\s*(?:number|no\.?|号码?|#)?\s*[:：]?\s*", re.IGNORECASE)


def _products(text: str, products: Iterable[str], pii_starts: list[int]) -> list[Slot]:
    """Whole-word matches for Latin names, substrings for Chinese; longest name first.

    "phone"/"手机" right before a phone number ("手机 138…", "phone number: +1 …") is the contact
    channel, not the product the ticket is about.
    """
    found = []
    for name in sorted(set(products), key=len, reverse=True):
        if re.search(r"[A-Za-z]", name):
            pattern = re.compile(rf"(?<![A-Za-z]){re.escape(name)}s?(?![A-Za-z])", re.IGNORECASE)
        else:
            pattern = re.compile(re.escape(name))
        for match in pattern.finditer(text):
            if name.lower() in _CONTACT_WORDS:
                tail = _CONTACT_TAIL.match(text, match.end())
                # (the PII itself is blanked to spaces in `text`, so the tail runs into it)
                if tail and ("号" in tail.group() or any(match.end() <= p <= tail.end() for p in pii_starts)):
                    continue
            found.append(Slot(PRODUCT, name, match.start(), match.end()))
    return found
