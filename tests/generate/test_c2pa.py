"""C2PA manifests: signed with a self-made chain, read back, tampering and trust told apart."""

from __future__ import annotations

import io
import json
import struct
import sys
import wave
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

pytest.importorskip("c2pa")

from genloop.errors import GenloopError, MissingDependencyError
from genloop.generate.labels.c2pa import (
    TRAINED_ALGORITHMIC_MEDIA,
    read_c2pa,
    sign_c2pa,
    software_agent,
)
from genloop.generate.labels.certificates import SigningChain, make_test_chain
from genloop.generate.labels.implicit import aigc_label

MODEL = "mnist-dcgan-v3"
XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/" TC260:AIGC="{&quot;Label&quot;:'
    '&quot;1&quot;}"/></rdf:RDF></x:xmpmeta>'
)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> SigningChain:
    return make_test_chain(tmp_path_factory.mktemp("chain"), key_type="ed25519")


def _image() -> Image.Image:
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    image.putpixel((3, 4), (0, 0, 255))
    return image


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "wav":
        with wave.open(buffer, "wb") as sound:
            sound.setnchannels(1)
            sound.setsampwidth(2)
            sound.setframerate(8000)
            sound.writeframes(struct.pack("<800h", *range(-400, 400)))
    else:
        _image().save(buffer, format=fmt.upper())
    return buffer.getvalue()


def _sign(data: bytes, fmt: str, chain: SigningChain) -> bytes:
    return sign_c2pa(
        data, fmt, certificate=chain.certificate, key=chain.key, model_version=MODEL, producer="ACME 公司"
    )


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "wav"])
def test_signed_file_reads_back_as_created_by_the_model(fmt: str, chain: SigningChain) -> None:
    signed = _sign(_encoded(fmt), fmt, chain)
    report = read_c2pa(signed, fmt)
    assert report.present and report.valid
    assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert report.software_agent == "mnist-dcgan/3"
    assert report.manifest is not None
    labels = [assertion["label"] for assertion in report.manifest["assertions"]]
    assert any(label.startswith("c2pa.actions") for label in labels)
    assert report.manifest["claim_generator_info"][0]["name"] == "genloop"
    assert report.manifest["signature_info"]["alg"] == "Ed25519"
    # Self-made CA: the only problem is trust, not integrity.
    assert report.problems == ["signingCredential.untrusted"] and not report.trusted


def test_hard_binding_is_in_the_manifest(chain: SigningChain) -> None:
    import c2pa

    signed = _sign(_encoded("png"), "png", chain)
    with c2pa.Reader("image/png", io.BytesIO(signed)) as reader:
        successes = {entry["code"] for entry in reader.get_validation_results()["activeManifest"]["success"]}
        store = json.loads(reader.detailed_json())
    assert "assertion.dataHash.match" in successes
    manifest = store["manifests"][store["active_manifest"]]
    assert any(label.startswith("c2pa.hash.data") for label in _assertion_labels(manifest))


def _assertion_labels(manifest: dict[str, object]) -> list[str]:
    assertions = manifest.get("assertion_store") or {}
    return list(assertions) if isinstance(assertions, dict) else []


def test_p256_key_signs_with_es256(tmp_path: Path) -> None:
    chain = make_test_chain(tmp_path, key_type="p256")
    report = read_c2pa(_sign(_encoded("jpeg"), "jpg", chain), "jpg")
    assert report.valid and report.manifest is not None
    assert report.manifest["signature_info"]["alg"] == "Es256"


def test_trust_anchor_makes_the_self_made_chain_trusted(chain: SigningChain) -> None:
    report = read_c2pa(_sign(_encoded("png"), "png", chain), "png", trust_anchors=chain.ca_certificate)
    assert report.valid and report.trusted and report.problems == []


def _png_with_changed_idat_byte(png: bytes) -> bytes:
    """Flip one byte inside the first IDAT chunk and fix its CRC (what a careful forger would do)."""
    position = 8
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position : position + 8])
        if kind == b"IDAT":
            body = bytearray(png[position + 8 : position + 8 + length])
            body[length // 2] ^= 0x01
            crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)))
            end = position + 12 + length
            return png[: position + 8] + bytes(body) + crc + png[end:]
        position += 12 + length
    raise AssertionError("no IDAT chunk")


def test_tampered_png_is_invalid_with_a_hash_mismatch(chain: SigningChain) -> None:
    signed = _sign(_encoded("png"), "png", chain)
    report = read_c2pa(_png_with_changed_idat_byte(signed), "png")
    assert report.present and not report.valid
    assert "assertion.dataHash.mismatch" in report.problems


def test_tampered_jpeg_pixel_is_invalid(chain: SigningChain) -> None:
    signed = bytearray(_sign(_encoded("jpeg"), "jpeg", chain))
    scan = signed.rfind(b"\xff\xda") + 20  # inside the entropy-coded image data
    while signed[scan] in (0x00, 0xFE, 0xFF):
        scan += 1
    signed[scan] ^= 0x01
    report = read_c2pa(bytes(signed), "jpeg")
    assert report.present and not report.valid
    assert "assertion.dataHash.mismatch" in report.problems


def test_file_without_manifest_is_absent() -> None:
    report = read_c2pa(_encoded("png"), "png")
    assert not report.present and not report.valid and report.manifest is None


def test_truncated_file_is_reported_not_raised(chain: SigningChain) -> None:
    signed = _sign(_encoded("png"), "png", chain)
    report = read_c2pa(signed[: len(signed) // 2], "png")
    assert not report.valid and report.problems and report.problems[0].startswith("c2pa.unreadable")


@pytest.mark.parametrize("fmt", ["midi", "txt"])
def test_unsupported_format_is_a_clear_error(fmt: str, chain: SigningChain) -> None:
    with pytest.raises(GenloopError, match=fmt) as error:
        _sign(b"MThd", fmt, chain)
    assert "png" in str(error.value) and "wav" in str(error.value)
    with pytest.raises(GenloopError, match=fmt):
        read_c2pa(b"MThd", fmt)


def test_aigc_metadata_survives_signing_and_is_covered_by_the_binding(chain: SigningChain) -> None:
    # GB 45438 first (the `AIGC` iTXt chunk implicit.py writes, plus an XMP packet), C2PA last.
    label = aigc_label(producer="ACME", produce_id="c-1", model_version=MODEL)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("AIGC", json.dumps(label, ensure_ascii=False))
    info.add_itxt("XML:com.adobe.xmp", XMP)
    buffer = io.BytesIO()
    _image().save(buffer, format="PNG", pnginfo=info)

    signed = _sign(buffer.getvalue(), "png", chain)
    with Image.open(io.BytesIO(signed)) as image:
        assert isinstance(image, PngImagePlugin.PngImageFile)
        assert json.loads(image.text["AIGC"]) == label
        assert "TC260:AIGC" in image.text["XML:com.adobe.xmp"]
    assert read_c2pa(signed, "png").valid
    # The hard binding covers the AIGC chunk: stripping it breaks the manifest.
    stripped = signed.replace(b"iTXtAIGC", b"iTXtAIGX")
    assert "assertion.dataHash.mismatch" in read_c2pa(stripped, "png").problems


def test_jpeg_xmp_survives_signing(chain: SigningChain) -> None:
    buffer = io.BytesIO()
    _image().save(buffer, format="JPEG", xmp=XMP.encode("utf-8"))
    signed = _sign(buffer.getvalue(), "jpeg", chain)
    with Image.open(io.BytesIO(signed)) as image:
        assert b"TC260:AIGC" in image.info["xmp"]
    assert read_c2pa(signed, "jpeg").valid


def test_key_of_another_certificate_is_refused(chain: SigningChain, tmp_path: Path) -> None:
    other = make_test_chain(tmp_path)
    with pytest.raises(GenloopError, match="does not belong to the key"):
        sign_c2pa(
            _encoded("png"),
            "png",
            certificate=chain.certificate,
            key=other.key,
            model_version=MODEL,
            producer="x",
        )


def test_missing_certificate_file_names_it(tmp_path: Path, chain: SigningChain) -> None:
    with pytest.raises(GenloopError, match=r"nowhere\.pem"):
        sign_c2pa(
            _encoded("png"),
            "png",
            certificate=tmp_path / "nowhere.pem",
            key=chain.key,
            model_version=MODEL,
            producer="x",
        )


def test_without_c2pa_python_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)  # makes `import c2pa` raise ImportError
    with pytest.raises(MissingDependencyError) as error:
        read_c2pa(b"", "png")
    assert "genloop[provenance]" in str(error.value)


def test_software_agent_splits_genloop_version_ids() -> None:
    assert software_agent("mnist-dcgan-v12") == {"name": "mnist-dcgan", "version": "12"}
    assert software_agent("my-vae") == {"name": "my-vae"}
