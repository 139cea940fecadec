"""Every label kind written and read back on every format; tampering detected; propagator filled."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genloop.config import LabelConfig
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, apply_labels, encode, set_propagator
from genloop.generate.labels.formats import FORMATS, container, detect_format, find_labels
from genloop.generate.labels.implicit import AIGC_FIELDS, label_json, parse_reserved_code, read_implicit_label
from genloop.generate.labels.signing import PublicKey, load_public_key
from genloop.generate.labels.verify import verify_bytes
from genloop.workspace import Workspace

MUSICXML = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 4.0 Partwise//EN" "http://www.musicxml.org/dtds/partwise.dtd">
<score-partwise version="4.0">
  <part-list>
    <score-part id="P1"><part-name>Music</part-name></score-part>
  </part-list>
  <part id="P1">
    <measure number="1">
      <note><pitch><step>C</step><octave>4</octave></pitch><duration>4</duration><type>whole</type></note>
    </measure>
  </part>
</score-partwise>
"""
NO_WATERMARK = LabelConfig(watermark=False)


def midi_bytes() -> bytes:
    track = bytes(
        [
            *(0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20),  # tempo
            *(0x00, 0x90, 60, 100, 0x60, 62, 100),  # note on, then running status
            *(0x60, 0x80, 60, 0, 0x00, 62, 0),
            *(0x00, 0xFF, 0x2F, 0x00),
        ]
    )
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96) + b"MTrk" + struct.pack(">I", len(track)) + track


def wav_bytes(rate: int = 8000) -> bytes:
    t = np.arange(rate // 2) / rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def gradient(size: int = 128) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size]
    return Image.fromarray(
        np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], -1).astype(np.uint8)
    )


def artifact(fmt: str, content_id: str = "item-1") -> Artifact:
    if fmt in ("png", "jpeg", "webp"):
        return Artifact(content_id, "image", gradient(), fmt, {} if fmt == "png" else {"quality": 90})
    if fmt in ("txt", "md"):
        return Artifact(content_id, "text", "Once upon a time.\n一只猫坐在垫子上。\n", fmt)
    data: bytes | str = {"wav": wav_bytes(), "mid": midi_bytes()}[fmt] if fmt != "musicxml" else MUSICXML
    return Artifact(content_id, "music", data, fmt)


@pytest.fixture()
def context(tmp_path: Path) -> LabelContext:
    return LabelContext(Workspace(tmp_path), producer="genloop-test", model_version="digits-v1")


def workspace_key(context: LabelContext, algorithm: str = "ed25519") -> PublicKey:
    return load_public_key(context.workspace.state_dir / "keys" / f"aigc-{algorithm}.pub")


EXPLICIT_STATE = {
    "png": "not-checked",
    "jpeg": "not-checked",
    "webp": "not-checked",
    "wav": "valid",
    "mid": "not-applicable",
    "txt": "valid",
    "md": "valid",
    "musicxml": "not-applicable",
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_labelled_and_reads_back_valid(fmt: str, context: LabelContext) -> None:
    labelled = apply_labels(artifact(fmt), NO_WATERMARK, context)
    assert detect_format(labelled.data, "x" + labelled.extension) == fmt
    report = verify_bytes(labelled.data, fmt, [workspace_key(context)])
    states = {finding.kind: finding.state for finding in report.findings}
    assert states["implicit"] == "valid" and states["explicit"] == EXPLICIT_STATE[fmt]
    assert report.exit_code == 0
    label = read_implicit_label(labelled.data)
    assert label is not None and tuple(label) == AIGC_FIELDS  # strict: every field, in order
    assert label["ProduceID"] == "item-1" and label["ContentProducer"] == "genloop-test"
    assert label["ContentPropagator"] == label["PropagateID"] == ""
    code = parse_reserved_code(label["ReservedCode1"])
    assert code is not None and code.model == "digits-v1" and code.algorithm == "ed25519"
    assert labelled.labels["implicit"]["AIGC"] == label
    # Deterministic bytes: the same item labels to the same file.
    assert apply_labels(artifact(fmt), NO_WATERMARK, context).data == labelled.data


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_content_hash_leaves_the_label_out(fmt: str) -> None:
    item = artifact(fmt)
    plain = encode(item)
    box = container(fmt)
    labelled = box.write(plain, label_json({"Label": "1", "ProduceID": "x"}))
    assert labelled != plain and box.content_hash(labelled) == box.content_hash(plain)
    # Rewriting replaces the label instead of adding a second one.
    assert len(find_labels(box.write(labelled, label_json({"Label": "1"})), fmt)) == len(
        find_labels(labelled, fmt)
    )


def _tampered_content(fmt: str, data: bytes) -> bytes:
    """The same file with its content edited and its label kept."""
    box = container(fmt)
    label = find_labels(data, fmt)[0].fields
    if fmt in ("png", "jpeg", "webp"):
        image = Image.open(io.BytesIO(data)).convert("RGB")
        image.putpixel((5, 5), (255, 0, 0))
        edited = encode(Artifact("x", "image", image, fmt, {"quality": 90}))
        return box.write(edited, label_json(label))
    if fmt in ("txt", "md"):
        return data.replace("猫".encode(), "狗".encode())
    if fmt == "musicxml":
        return data.replace(b"<step>C</step>", b"<step>D</step>")
    if fmt == "mid":
        return data.replace(bytes([0x90, 60, 100]), bytes([0x90, 61, 100]))
    samples = bytearray(data)
    at = data.index(b"data") + 8 + 10000  # a sample in the audio, past the chime
    samples[at] ^= 0x40
    return bytes(samples)


@pytest.mark.parametrize("fmt", FORMATS)
def test_edited_content_is_detected(fmt: str, context: LabelContext) -> None:
    labelled = apply_labels(artifact(fmt), NO_WATERMARK, context).data
    tampered = _tampered_content(fmt, labelled)
    report = verify_bytes(tampered, fmt, [workspace_key(context)])
    implicit = report.findings[1]
    assert implicit.state == "tampered" and "content" in implicit.detail
    assert report.exit_code == 1
    # Without any public key the content hash still catches it.
    assert verify_bytes(tampered, fmt, []).findings[1].state == "tampered"


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_edited_label_field_breaks_the_signature(fmt: str, context: LabelContext) -> None:
    labelled = apply_labels(artifact(fmt), NO_WATERMARK, context).data
    label = dict(find_labels(labelled, fmt)[0].fields)
    label["ContentProducer"] = "someone-else"
    edited = container(fmt).write(labelled, label_json(label))
    implicit = verify_bytes(edited, fmt, [workspace_key(context)]).findings[1]
    assert implicit.state == "tampered" and "signature" in implicit.detail
    # With no key to check against, the label is reported present but not valid.
    assert verify_bytes(edited, fmt, []).findings[1].state == "present"


@pytest.mark.parametrize("fmt", FORMATS)
def test_publication_fills_the_propagator_and_the_signature_holds(fmt: str, context: LabelContext) -> None:
    labelled = apply_labels(artifact(fmt), NO_WATERMARK, context).data
    published = set_propagator(labelled, fmt, "genloop-gallery", "pub-42")
    label = read_implicit_label(published)
    assert (
        label is not None
        and label["ContentPropagator"] == "genloop-gallery"
        and label["PropagateID"] == "pub-42"
    )
    assert verify_bytes(published, fmt, [workspace_key(context)]).findings[1].state == "valid"


def test_missing_label_exits_2(context: LabelContext) -> None:
    plain = encode(artifact("png"))
    report = verify_bytes(plain, "png", [])
    assert report.findings[1].state == "missing" and report.exit_code == 2
    text = verify_bytes(b"just some text\n", "txt", [])
    assert {f.kind: f.state for f in text.findings}["explicit"] == "missing" and text.exit_code == 2


def test_png_pixels_and_other_chunks_survive_labelling(context: LabelContext) -> None:
    labelled = apply_labels(artifact("png"), LabelConfig(visible=False, watermark=False), context).data
    with Image.open(io.BytesIO(labelled)) as image:
        assert np.array_equal(np.asarray(image), np.asarray(gradient()))
        assert image.info["xmp"].count(b"http://www.tc260.org.cn/ns/AIGC/1.0/") == 1  # Pillow sees the XMP


def test_webp_becomes_extended_format_and_still_decodes(context: LabelContext) -> None:
    item = artifact("webp").replace(options={"lossless": True})
    labelled = apply_labels(item, LabelConfig(visible=False, watermark=False), context).data
    assert labelled[12:16] == b"VP8X" and labelled[20] & 0x04  # the XMP flag
    with Image.open(io.BytesIO(labelled)) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(gradient()))
        assert b"TC260:AIGC" in image.info["xmp"]
