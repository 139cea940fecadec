"""Reading is lenient: labels written by other tools, misspelt or in other places, are still found."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from PIL import Image

from genloop.generate.labels.formats import find_labels
from genloop.generate.labels.implicit import AIGC_FIELDS, parse_label
from genloop.generate.labels.verify import verify_bytes

GOOD = {
    "Label": "1",
    "ContentProducer": "acme",
    "ProduceID": "p-1",
    "ReservedCode1": "",
    "ContentPropagator": "",
    "PropagateID": "",
    "ReservedCode2": "",
}


def _png(*chunks: tuple[bytes, bytes]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    data = buffer.getvalue()
    extra = b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        for kind, body in chunks
    )
    return data[:33] + extra + data[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


def test_field_names_in_any_case_are_read() -> None:
    parsed = parse_label(json.dumps({k.lower(): v for k, v in GOOD.items()}))
    assert parsed is not None and parsed.fields == GOOD and not parsed.missing
    assert any("read as 'ContentProducer'" in note for note in parsed.notes)


@pytest.mark.parametrize(
    ("spelling", "field"),
    [
        ("Contentproducer", "ContentProducer"),
        ("ProduceId", "ProduceID"),
        ("ContentProduer", "ContentProducer"),
        ("Content_Propagator", "ContentPropagator"),
        ("PropagateId", "PropagateID"),
        ("ProducerID", "ProduceID"),
    ],
)
def test_misspelt_field_names_are_read(spelling: str, field: str) -> None:
    value = {spelling if name == field else name: v for name, v in GOOD.items()}
    parsed = parse_label(json.dumps(value))
    assert parsed is not None and parsed.fields[field] == GOOD[field]
    assert f"field {spelling!r} read as {field!r}" in parsed.notes


def test_missing_fields_are_reported_and_required_ones_make_it_malformed() -> None:
    parsed = parse_label('{"Label": "1", "ContentProducer": "acme"}')
    assert parsed is not None and parsed.malformed and "ProduceID" in parsed.missing
    report = verify_bytes(
        _png((b"tEXt", b"AIGC\0" + b'{"Label": "1", "ContentProducer": "acme"}')), "png", []
    )
    implicit = report.findings[1]
    assert implicit.state == "malformed" and "ProduceID" in implicit.detail and report.exit_code == 1
    optional_only = parse_label('{"Label": "1", "ContentProducer": "a", "ProduceID": "b"}')
    assert optional_only is not None and not optional_only.malformed
    assert optional_only.missing == list(AIGC_FIELDS[3:])


def test_whitespace_bom_trailing_commas_and_numbers_are_tolerated() -> None:
    text = '\ufeff  {"AIGC": {"Label": 1, "ContentProducer": "acme  ", "ProduceID": "p-1",}}  \n\n'
    parsed = parse_label(text)
    assert parsed is not None
    assert parsed.fields == {"Label": "1", "ContentProducer": "acme", "ProduceID": "p-1"}
    assert "Label is int, should be a string" in parsed.notes


def test_a_label_stored_as_a_json_string_is_unwrapped() -> None:
    parsed = parse_label(json.dumps({"aigc": json.dumps(GOOD)}))
    assert parsed is not None and parsed.fields == GOOD and "key 'aigc' read as 'AIGC'" in parsed.notes


def test_unreadable_json_in_an_aigc_slot_is_malformed() -> None:
    report = verify_bytes(_png((b"tEXt", b"AIGC\0{not json")), "png", [])
    assert report.findings[1].state == "malformed"


def test_png_text_chunk_with_a_lowercase_keyword() -> None:
    found = find_labels(_png((b"tEXt", b"aigc\0" + json.dumps(GOOD).encode())), "png")
    assert [label.fields for label in found] == [GOOD]


def test_png_compressed_xmp_with_another_prefix_in_attribute_form() -> None:
    value = json.dumps(GOOD).replace('"', "&quot;")
    xmp = (
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description xmlns:aigc="http://www.tc260.org.cn/ns/AIGC/1.0/" aigc:AIGC="{value}"/>'
        f"</rdf:RDF></x:xmpmeta>"
    ).encode()
    body = b"XML:com.adobe.xmp\0\x01\x00\0\0" + zlib.compress(xmp)
    found = find_labels(_png((b"iTXt", body)), "png")
    assert [label.fields for label in found] == [GOOD]


def test_broken_xmp_falls_back_to_a_pattern() -> None:
    xmp = b"<x:xmpmeta><rdf:Description><TC260:AIGC>" + json.dumps(GOOD).encode() + b"</TC260:AIGC><unclosed>"
    found = find_labels(_png((b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp)), "png")
    assert [label.fields for label in found] == [GOOD]


def test_jpeg_comment_segment() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    comment = b"AIGC: " + json.dumps(GOOD).encode()
    with_comment = data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]
    found = find_labels(with_comment, "jpeg")
    assert [label.fields for label in found] == [GOOD] and found[0].location == "jpeg COM"


def test_text_label_in_a_trailer_with_odd_spacing() -> None:
    text = "A poem.\n\n---\n  aigc =  " + json.dumps(GOOD) + "   \n---\n"
    found = find_labels(text.encode(), "txt")
    assert [label.fields for label in found] == [GOOD] and found[0].location == "text trailer"


def test_text_front_matter_with_crlf_and_lowercase_key() -> None:
    text = "---\r\naigc: " + json.dumps(GOOD) + "\r\ntitle: x\r\n---\r\nbody\r\n"
    assert [label.fields for label in find_labels(text.encode(), "md")] == [GOOD]


def test_wav_chunk_in_lowercase_and_midi_marker_event() -> None:
    payload = json.dumps(GOOD).encode()
    wav = (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(payload))
        + b"WAVE"
        + b"aigc"
        + struct.pack("<I", len(payload))
        + payload
    )
    assert [label.fields for label in find_labels(wav, "wav")] == [GOOD]
    text = b"aigc:" + payload
    length = bytes([0x80 | len(text) >> 7, len(text) & 0x7F])  # a 2-byte variable-length number
    track = b"\x00\xff\x06" + length + text + b"\x00\xff\x2f\x00"  # a marker, not a text event
    midi = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96) + b"MTrk" + struct.pack(">I", len(track)) + track
    assert [label.fields for label in find_labels(midi, "mid")] == [GOOD]


def test_musicxml_field_with_single_quotes_and_lowercase_name() -> None:
    xml = (
        "<score-partwise><identification><miscellaneous><miscellaneous-field name='aigc'>"
        + json.dumps(GOOD).replace("&", "&amp;")
        + "</miscellaneous-field></miscellaneous></identification><part-list/></score-partwise>"
    )
    assert [label.fields for label in find_labels(xml.encode(), "musicxml")] == [GOOD]
