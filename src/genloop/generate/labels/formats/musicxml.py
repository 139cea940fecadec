"""MusicXML: the label as `<miscellaneous-field name="AIGC">{json}</miscellaneous-field>`.

It goes inside `<identification><miscellaneous>` (created when absent, in the place the
MusicXML schema gives them). The file is edited as text, so the DOCTYPE and the rest
of the score keep their bytes. The content hash covers the canonical XML (C14N 2.0,
whitespace-only text dropped) without the AIGC field and without a `<miscellaneous>` or
`<identification>` left empty by its removal.
"""

from __future__ import annotations

import re
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from genloop.errors import DataError
from genloop.generate.labels.formats.common import decode_text, sha256_hash
from genloop.generate.labels.implicit import xml_unescape

_FIELD = re.compile(
    r"[ \t]*<miscellaneous-field\s+name\s*=\s*([\"'])aigc\1\s*>(.*?)</miscellaneous-field>[ \t]*\n?",
    re.IGNORECASE | re.DOTALL,
)
# Elements that follow <identification> in a score header (MusicXML 4.0 score-header group).
_AFTER_IDENTIFICATION = ("<defaults", "<credit", "<part-list")


def texts(data: bytes) -> list[tuple[str, str]]:
    text = decode_text(data, "musicxml")
    found = [("musicxml miscellaneous-field AIGC", xml_unescape(m.group(2))) for m in _FIELD.finditer(text)]
    found.extend(
        ("musicxml " + tag, xml_unescape(m.group(1)))
        for tag in ("miscellaneous-field", "rights", "source")
        for m in re.finditer(rf"<{tag}\b[^>]*>(.*?)</{tag}>", text, re.DOTALL)
        if "aigc" in m.group(0).lower() and not _FIELD.match(m.group(0))
    )
    return found


def write(data: bytes, json_text: str) -> bytes:
    text = _FIELD.sub("", decode_text(data, "musicxml"))
    field = f'<miscellaneous-field name="AIGC">{escape(json_text)}</miscellaneous-field>'
    if (at := text.find("</miscellaneous>")) >= 0:
        text = f"{text[:at]}  {field}\n    {text[at:]}"
    elif (at := text.find("</identification>")) >= 0:
        text = f"{text[:at]}  <miscellaneous>\n      {field}\n    </miscellaneous>\n  {text[at:]}"
    else:
        positions = [p for tag in _AFTER_IDENTIFICATION if (p := text.find(tag)) >= 0]
        if not positions:
            raise DataError("MusicXML without <part-list>: not a score, nowhere to put the label")
        at = min(positions)
        block = (
            f"<identification>\n    <miscellaneous>\n      {field}\n"
            "    </miscellaneous>\n  </identification>\n  "
        )
        text = f"{text[:at]}{block}{text[at:]}"
    return text.encode("utf-8")


def content_hash(data: bytes) -> str:
    text = _FIELD.sub("", decode_text(data, "musicxml"))
    text = re.sub(r"<!DOCTYPE[^>\[]*(\[[^\]]*\])?\s*>", "", text, count=1)  # no DTD fetch, no entities
    try:
        root = ElementTree.fromstring(text.encode("utf-8"))
    except ElementTree.ParseError as exc:
        raise DataError(f"MusicXML that does not parse: {exc}") from exc
    for parent_tag, child_tag in (
        ("identification", "miscellaneous"),
        ("score-partwise", "identification"),
        ("score-timewise", "identification"),
    ):
        for parent in root.iter(parent_tag):
            for child in list(parent.findall(child_tag)):
                if len(child) == 0 and not (child.text or "").strip():
                    parent.remove(child)
    canonical = ElementTree.canonicalize(ElementTree.tostring(root, encoding="unicode"), strip_text=True)
    return sha256_hash("musicxml/1", canonical.encode("utf-8"))
