"""Implicit AI-generated label (GB 45438-2025 Annex E): the `AIGC` JSON, its signature, XMP.

GB 45438-2025 (《网络安全技术 人工智能生成合成内容标识方法》, in force since
2025-09-01) asks that a generated file carry, in its metadata, an `AIGC` entry::

    {"Label": "1",                  # 1: AI-generated; 2: possibly; 3: suspected
     "ContentProducer": "...",      # name or code of the service that generated it
     "ProduceID": "...",            # the producer's unique id for this content
     "ReservedCode1": "...",        # producer's reserved field: genloop's signature (below)
     "ContentPropagator": "",       # filled in by the platform that publishes it
     "PropagateID": "",             # the propagator's id for it
     "ReservedCode2": ""}           # the propagator's reserved field

Writing is strict (these names, this order, strings, compact JSON); reading is lenient
(`parse_label`: case, near-misspellings, numbers, whitespace; each leniency is a note).

`ReservedCode1` (genloop's signature, see `reserved_code`)::

    genloop-sig/1;model=<version>;alg=ed25519|sm2;kid=<16 hex>;hash=sha256:<hex>;sig=<base64url>

The signature covers Label, ContentProducer, ProduceID, the model version, algorithm,
key id and the content hash (see `formats`: what the hash covers, per format, always
without the label itself). It does not cover the propagator fields, so publishing can
fill them (`apply.set_propagator`) without re-signing.
"""

from __future__ import annotations

import base64
import difflib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from PIL import Image, PngImagePlugin

AIGC_KEY = "AIGC"
AIGC_FIELDS = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)
REQUIRED_FIELDS = ("Label", "ContentProducer", "ProduceID")
SIGNED_FIELDS = ("Label", "ContentProducer", "ProduceID")
TC260_NAMESPACE = "http://www.tc260.org.cn/ns/AIGC/1.0/"
XMP_KEYWORD = "XML:com.adobe.xmp"
SIGNATURE_SCHEME = "genloop-sig/1"
_SIGNATURE_DOMAIN = "GB45438-AIGC genloop-sig/1\n"


def aigc_label(
    *, producer: str, produce_id: str, model_version: str, reserved_code1: str | None = None
) -> dict[str, str]:
    """The seven fields in order; `ReservedCode1` defaults to the model version (unsigned)."""
    return {
        "Label": "1",
        "ContentProducer": producer,
        "ProduceID": produce_id,
        "ReservedCode1": model_version if reserved_code1 is None else reserved_code1,
        "ContentPropagator": "",
        "PropagateID": "",
        "ReservedCode2": "",
    }


def label_json(label: dict[str, str]) -> str:
    """Strict serialisation: exactly the seven fields, in order, compact, UTF-8 (not \\u-escaped)."""
    return json.dumps(
        {name: str(label.get(name, "")) for name in AIGC_FIELDS}, ensure_ascii=False, separators=(",", ":")
    )


# ---- ReservedCode1: the signature -------------------------------------------------------------


@dataclass(frozen=True)
class ReservedCode:
    model: str
    algorithm: str
    kid: str
    content_hash: str
    signature: bytes

    def text(self) -> str:
        sig = base64.urlsafe_b64encode(self.signature).decode("ascii").rstrip("=")
        return (
            f"{SIGNATURE_SCHEME};model={quote(self.model, safe='')};alg={self.algorithm};"
            f"kid={self.kid};hash={self.content_hash};sig={sig}"
        )


def signed_message(
    label: dict[str, str], *, model: str, algorithm: str, kid: str, content_hash: str
) -> bytes:
    """The bytes the signature covers (the propagator fields and ReservedCode2 are left out)."""
    values = [str(label.get(name, "")) for name in SIGNED_FIELDS]
    body = json.dumps([*values, model, algorithm, kid, content_hash], ensure_ascii=False)
    return (_SIGNATURE_DOMAIN + body).encode("utf-8")


def parse_reserved_code(text: str) -> ReservedCode | None:
    """genloop's signature in `ReservedCode1`, or None when the field holds something else."""
    parts = text.strip().split(";")
    if not parts or parts[0].strip().lower() != SIGNATURE_SCHEME:
        return None
    values = dict(part.split("=", 1) for part in parts[1:] if "=" in part)
    values = {key.strip().lower(): value.strip() for key, value in values.items()}
    if not {"model", "alg", "kid", "hash", "sig"} <= set(values):
        return None
    try:
        signature = base64.urlsafe_b64decode(values["sig"] + "=" * (-len(values["sig"]) % 4))
    except ValueError:
        return None
    return ReservedCode(
        unquote(values["model"]),
        values["alg"].lower(),
        values["kid"].lower(),
        values["hash"].lower(),
        signature,
    )


# ---- XMP --------------------------------------------------------------------------------------


def xmp_packet(json_text: str) -> bytes:
    """An XMP packet holding the label JSON as the `TC260:AIGC` property (deterministic)."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" xmlns:TC260="{TC260_NAMESPACE}">\n'
        f"   <TC260:AIGC>{escape(json_text)}</TC260:AIGC>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def aigc_from_xmp(text: str) -> list[str]:
    """Every value of an `AIGC` property (element or attribute, any prefix/namespace, any case)."""
    start, end = text.find("<x:xmpmeta"), text.rfind("</x:xmpmeta>")
    body = text[start : end + len("</x:xmpmeta>")] if start >= 0 and end > start else text
    found: list[str] = []
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        root = None
    if root is not None:
        for element in root.iter():
            if _local(element.tag) == "aigc" and (element.text or "").strip():
                found.append(element.text or "")
            found.extend(value for key, value in element.attrib.items() if _local(key) == "aigc")
        return found
    # Broken XML in the wild: fall back to a pattern for either form.
    for match in re.finditer(r"<(?:[\w.-]+:)?aigc\b[^>]*>(.*?)</(?:[\w.-]+:)?aigc>", body, re.I | re.S):
        found.append(xml_unescape(match.group(1)))
    for match in re.finditer(r"(?:[\w.-]+:)?aigc\s*=\s*(\"[^\"]*\"|'[^']*')", body, re.I):
        found.append(xml_unescape(match.group(1)[1:-1]))
    return found


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def xml_unescape(text: str) -> str:
    return (
        text.replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )


# ---- lenient reading --------------------------------------------------------------------------


@dataclass
class ParsedLabel:
    fields: dict[str, str]
    """The canonical field names that were found, with their (string) values."""
    notes: list[str] = field(default_factory=list)
    """Leniencies applied while reading (misspelt key, number for a string, ...)."""
    missing: list[str] = field(default_factory=list)
    location: str = ""

    @property
    def malformed(self) -> bool:
        return any(name in self.missing for name in REQUIRED_FIELDS)


_ALIASES = {
    "producer": "ContentProducer",
    "produceid": "ProduceID",
    "productid": "ProduceID",
    "propagator": "ContentPropagator",
    "reservedcode": "ReservedCode1",
    "label": "Label",
}


def _canonical_name(key: str) -> str | None:
    squashed = re.sub(r"[^a-z0-9]", "", key.lower())
    by_squashed = {name.lower(): name for name in AIGC_FIELDS}
    if squashed in by_squashed:
        return by_squashed[squashed]
    if squashed in _ALIASES:
        return _ALIASES[squashed]
    close = difflib.get_close_matches(squashed, list(by_squashed), n=1, cutoff=0.85)
    return by_squashed[close[0]] if close else None


def parse_label(text: str, location: str = "") -> ParsedLabel | None:
    """A label from a JSON text in the wild: `{"AIGC": {...}}`, the bare object, or a JSON string
    of it; None when the text holds no JSON object at all."""
    notes: list[str] = []
    value = _loads(text, notes)
    if isinstance(value, str):  # the JSON was itself stored as a JSON string
        value = _loads(value, notes)
        notes.append("the label was a JSON string holding JSON")
    if not isinstance(value, dict):
        return None
    for key in list(value):
        if key.strip().lower() == "aigc":
            if key != AIGC_KEY:
                notes.append(f"key {key!r} read as {AIGC_KEY!r}")
            inner = value[key]
            if isinstance(inner, str):
                inner = _loads(inner, notes)
                notes.append("the AIGC value was a JSON string")
            if isinstance(inner, dict):
                value = inner
            break
    fields: dict[str, str] = {}
    for key, raw in value.items():
        name = _canonical_name(str(key))
        if name is None or name in fields:
            if name is None:
                notes.append(f"unknown field {key!r} ignored")
            continue
        if name != key:
            notes.append(f"field {key!r} read as {name!r}")
        if not isinstance(raw, str):
            notes.append(f"{name} is {type(raw).__name__}, should be a string")
            raw = "" if raw is None else str(raw) if not isinstance(raw, (dict, list)) else json.dumps(raw)
        fields[name] = raw.strip() if raw != raw.strip() else raw
    missing = [name for name in AIGC_FIELDS if name not in fields]
    if list(fields) != [name for name in AIGC_FIELDS if name in fields]:
        notes.append("fields are not in the Annex E order")
    return ParsedLabel(fields, notes, missing, location)


def _loads(text: str, notes: list[str]) -> Any:
    cleaned = text.strip().lstrip("\ufeff").rstrip("\x00").strip()
    if cleaned != text:
        notes.append("surrounding whitespace/BOM/NUL ignored")
    try:
        return json.loads(cleaned)
    except json.JSONDecodeError:
        pass
    start, end = cleaned.find("{"), cleaned.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        value = json.loads(cleaned[start : end + 1])
    except json.JSONDecodeError:
        repaired = re.sub(r",\s*([}\]])", r"\1", cleaned[start : end + 1])  # trailing commas
        try:
            value = json.loads(repaired)
        except json.JSONDecodeError:
            return None
        notes.append("trailing commas in the JSON ignored")
    notes.append("text around the JSON object ignored")
    return value


# ---- the first cut's PNG helpers (still used by the engine's direct path) ---------------------


def encode_png_with_label(image: Image.Image, label: dict[str, Any]) -> bytes:
    """PNG bytes of `image` carrying `label` as an `AIGC` iTXt chunk (deterministic bytes)."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(AIGC_KEY, json.dumps(label, ensure_ascii=False, sort_keys=False), zip=False)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, optimize=False)
    return buffer.getvalue()


def read_implicit_label(path_or_bytes: Path | bytes) -> dict[str, Any] | None:
    """The `AIGC` label of a file of any supported format (its fields as found), or None."""
    from genloop.generate.labels.formats import detect_format, find_labels

    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    name = None if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    found = find_labels(data, detect_format(data, name))
    return dict(found[0].fields) if found else None
