"""PII redaction: each type found and replaced; checksums tell real IDs and cards from other numbers."""

from __future__ import annotations

import pytest

from genloop.data.record import Record
from genloop.data.steps.pii import (
    PiiMatch,
    RedactPii,
    find_pii,
    luhn_valid,
    redact,
    redact_with_counts,
    valid_cn_id,
)

# GB 11643-1999: the standard's own sample number (check character X), and one with a digit check.
VALID_IDS = ["11010519491231002X", "320106199003071234"]
# 4111… is the well-known Visa test number; 6222021001123456789 a Luhn-valid 19-digit UnionPay-style one.
VALID_CARDS = ["4111111111111111", "4111 1111 1111 1111", "6222021001123456789", "5500-0000-0000-0004"]


@pytest.mark.parametrize("number", VALID_IDS)
def test_valid_cn_ids_pass_the_checksum_and_are_redacted(number: str) -> None:
    assert valid_cn_id(number)
    assert redact(f"身份证号:{number},请核对。") == "身份证号:[CN_ID],请核对。"


@pytest.mark.parametrize(
    "number",
    [
        "110105194912310021",  # wrong check digit (should be X)
        "110105194913310028",  # month 13 (check digit recomputed for it: still not a birth date)
        "110105202902300013",  # 30 February
        "110105299901010012",  # born in the future
        "11010519491231002",  # 17 digits
    ],
)
def test_invalid_cn_ids_are_rejected(number: str) -> None:
    assert not valid_cn_id(number)
    assert "[CN_ID]" not in redact(f"编号 {number} 已登记")


def test_invalid_id_with_only_the_date_wrong_has_a_correct_check_character() -> None:
    """So the date test is what rejects it, not the checksum."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    body = "11010519491331002"  # month 13
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    assert not valid_cn_id(body + check)


@pytest.mark.parametrize("card", VALID_CARDS)
def test_luhn_valid_cards_are_redacted(card: str) -> None:
    assert redact(f"my card {card} was charged") == "my card [BANK_CARD] was charged"


@pytest.mark.parametrize("card", ["4111111111111112", "6222021001123456780", "1234 5678 9012 3456"])
def test_cards_failing_luhn_are_kept(card: str) -> None:
    assert not luhn_valid(card.replace(" ", ""))
    assert redact(f"ref {card}") == f"ref {card}"


def test_luhn_valid_numbers_outside_banking_prefixes_are_kept() -> None:
    # A millisecond timestamp that happens to pass Luhn: industry digit 1 is not a bank card.
    assert luhn_valid("1700000000004")
    assert redact("ts=1700000000004") == "ts=1700000000004"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("请联系 13812345678 咨询", "请联系 [PHONE] 咨询"),
        ("手机:138 1234 5678。", "手机:[PHONE]。"),
        ("tel +86 138-1234-5678.", "tel [PHONE]."),
        ("电话0086 13912345678", "电话[PHONE]"),
        ("Call +44 20 7946 0958 today", "Call [PHONE] today"),
        ("office: +1 (415) 555-2671", "office: [PHONE]"),
        ("or (415) 555-2671 / 415-555-2671", "or [PHONE] / [PHONE]"),
    ],
)
def test_phone_numbers_in_their_usual_shapes_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "订单号 20240501123456,下单日期 2024-05-01",
        "order #1234567 shipped 2024/05/01, tracking 20240501",
        "价格 12345678 元,数量 3",
        "version 1.2.3, build 12812345678901",  # a CN-mobile-looking run inside a longer number
        "at 12:30:45 on 28.11.2026",
        "Population: 1,412,000,000",
        "+12 is a score, not a phone",
    ],
)
def test_ordinary_numbers_dates_and_order_ids_are_not_redacted(text: str) -> None:
    assert find_pii(text) == []
    assert redact(text) == text


def test_emails_and_ips_are_redacted_in_english_and_chinese() -> None:
    text = (
        "Write to zhang.san+shop@mail.example.com.cn; server 192.168.1.20, "
        "v6 2001:db8::8a2e:370:7334 and ::1. 不是IP: 256.1.1.1 或 1.2.3"
    )
    assert redact(text) == ("Write to [EMAIL]; server [IP], v6 [IP] and [IP]. 不是IP: 256.1.1.1 或 1.2.3")


def test_pii_directly_between_chinese_characters_is_found() -> None:
    """Chinese has no spaces: a CJK character right before a number is not a word character here."""
    text = "邮箱a@b.cn电话13812345678,卡号6222021001123456789,IP为10.1.2.3。"
    assert redact(text) == "邮箱[EMAIL]电话[PHONE],卡号[BANK_CARD],IP为[IP]。"


def test_code_like_colons_are_not_ipv6() -> None:
    text = "a[1:2:3] std::map x::y 0x1F:0x2F"
    assert redact(text) == text


def test_find_pii_returns_typed_spans_in_order() -> None:
    text = "邮箱 a@b.cn 手机 13812345678 卡 4111111111111111 IP 10.0.0.1"
    matches = find_pii(text)
    assert [m.type for m in matches] == ["EMAIL", "PHONE", "BANK_CARD", "IP"]
    assert [text[m.start : m.end] for m in matches] == [
        "a@b.cn",
        "13812345678",
        "4111111111111111",
        "10.0.0.1",
    ]
    assert all(isinstance(m, PiiMatch) for m in matches)


def test_an_id_number_is_not_also_counted_as_a_card_or_phone() -> None:
    # The standard's sample ID contains digits that could start a phone; the ID wins, once.
    assert redact_with_counts("证件 11010519491231002X") == ("证件 [CN_ID]", {"CN_ID": 1})


def test_the_step_rewrites_text_records_counts_per_type_and_leaves_images_alone() -> None:
    def text_record(text: str) -> Record:
        return Record.create(text.encode(), modality="text", label=None, source="t", license="MIT")

    image = Record.create(b"\x89PNG 13812345678", modality="image", label=None, source="t", license="MIT")
    records = [
        text_record("联系 13812345678 或 a@b.com"),
        text_record("no pii here"),
        text_record("call 13912345678"),
        image,
    ]
    output = RedactPii()(records)
    assert output.dropped == []
    assert [r.payload for r in output.kept] == [
        "联系 [PHONE] 或 [EMAIL]".encode(),
        b"no pii here",
        b"call [PHONE]",
        image.payload,
    ]
    assert [r.meta.get("pii") for r in output.kept] == [{"PHONE": 1, "EMAIL": 1}, None, {"PHONE": 1}, None]
    assert [r.id for r in output.kept] == [r.id for r in records]  # lineage: id stays the original hash
    assert output.counters == {"pii:EMAIL": 1, "pii:PHONE": 2}
