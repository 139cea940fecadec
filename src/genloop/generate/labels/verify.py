"""Read every label kind back from a file and say what is present, valid, tampered or missing.

Per file, one finding per kind:

    explicit   text: the marker line; WAV: the chime; images: "not-checked" (a visible
               mark is for people; it is not machine-checked); MIDI/MusicXML: n/a
    implicit   the GB 45438 label: missing, malformed (required fields absent or not JSON),
               present (unsigned, or no public key to check), valid, or tampered (the
               content hash or the signature does not match)
    watermark  images, through `labels/watermark.py` when it is installed
    c2pa       through `labels/c2pa.py` when it is installed

Reading is lenient (see implicit.parse_label); each leniency used becomes a note.
Exit code of a file: 1 when anything is tampered or malformed, else 2 when a required
label (explicit where checkable, implicit) is missing, else 0.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

from genloop.errors import DataError, MissingDependencyError
from genloop.generate.labels import explicit
from genloop.generate.labels.apply import optional_label_module
from genloop.generate.labels.formats import container, find_labels
from genloop.generate.labels.formats.text import body_text
from genloop.generate.labels.implicit import ParsedLabel, parse_reserved_code, signed_message
from genloop.generate.labels.signing import PublicKey

State = Literal[
    "valid",
    "present",
    "not-checked",
    "not-applicable",
    "unavailable",
    "absent",
    "missing",
    "malformed",
    "tampered",
]
BAD_STATES = ("tampered", "malformed")
_SEVERITY = {"tampered": 5, "malformed": 4, "missing": 3, "present": 2, "valid": 1}
IMAGE_FORMATS = ("png", "jpeg", "webp")


@dataclass
class Finding:
    kind: str
    state: State
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileReport:
    path: str
    format: str
    findings: list[Finding]

    @property
    def exit_code(self) -> int:
        states = {finding.state for finding in self.findings}
        if states & set(BAD_STATES):
            return 1
        return 2 if "missing" in states else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "exit_code": self.exit_code,
            "labels": {f.kind: {"state": f.state, "detail": f.detail, **f.data} for f in self.findings},
        }


def verify_bytes(
    data: bytes, fmt: str, keys: list[PublicKey], path: str = "", *, text_line: str | None = None
) -> FileReport:
    """Every label kind of one file; `text_line`: the workspace's configured marker line, if any."""
    implicit, labels = check_implicit(data, fmt, keys)
    produce_id = labels[0].fields.get("ProduceID") if labels and not labels[0].malformed else None
    findings = [
        check_explicit(data, fmt),
        implicit,
        check_watermark(data, fmt, produce_id),
        check_c2pa(data, fmt),
    ]
    return FileReport(path, fmt, findings)


def check_explicit(data: bytes, fmt: str, text_line: str | None = None) -> Finding:
    if fmt in IMAGE_FORMATS:
        return Finding("explicit", "not-checked", "a visible mark on an image is not machine-checked")
    if fmt in ("txt", "md"):
        if explicit.text_has_marker(body_text(data), text_line):
            return Finding("explicit", "valid", "an AI-generated line opens or closes the text")
        return Finding("explicit", "missing", "no AI-generated line at the start or end of the text")
    if fmt == "wav":
        if explicit.has_chime(data):
            return Finding("explicit", "valid", "the audio opens with the two-tone chime")
        return Finding("explicit", "absent", "no chime at the start (optional for audio)")
    return Finding("explicit", "not-applicable", f"no visible mark for {fmt}")


def check_implicit(data: bytes, fmt: str, keys: list[PublicKey]) -> tuple[Finding, list[ParsedLabel]]:
    labels = find_labels(data, fmt)
    if not labels:
        return Finding("implicit", "missing", "no AIGC label in the file's metadata"), labels
    box = container(fmt)
    actual_hash = box.content_hash(data)
    findings = [_check_copy(label, actual_hash, keys) for label in labels]
    worst = max(findings, key=lambda finding: _SEVERITY.get(finding.state, 0))
    worst.data["copies"] = [
        {"location": label.location, "state": copy.state, "detail": copy.detail}
        for label, copy in zip(labels, findings, strict=True)
    ]
    notes = sorted({note for label in labels for note in label.notes})
    notes += sorted({f"fields missing: {', '.join(label.missing)}" for label in labels if label.missing})
    if notes:
        worst.data["notes"] = notes
    if len({tuple(sorted(label.fields.items())) for label in labels}) > 1:
        worst.data.setdefault("notes", []).append("the copies of the label disagree")
    return worst, labels


def _check_copy(label: ParsedLabel, actual_hash: str, keys: list[PublicKey]) -> Finding:
    data: dict[str, Any] = {"location": label.location, "AIGC": label.fields}
    if label.malformed:
        missing = [name for name in label.missing if name in ("Label", "ContentProducer", "ProduceID")]
        why = (
            label.notes[0]
            if not label.fields and label.notes
            else f"required fields missing: {', '.join(missing)}"
        )
        return Finding("implicit", "malformed", why, data)
    if label.missing:
        data["missing_fields"] = label.missing
    code = parse_reserved_code(label.fields.get("ReservedCode1", ""))
    if code is None:
        return Finding(
            "implicit", "present", "label present, unsigned (ReservedCode1 holds no signature)", data
        )
    data.update(algorithm=code.algorithm, kid=code.kid, model=code.model)
    if code.content_hash != actual_hash:
        return Finding(
            "implicit", "tampered", "the content changed after labelling (content hash differs)", data
        )
    key = next((k for k in keys if k.kid == code.kid), None)
    if key is None:
        return Finding(
            "implicit",
            "present",
            f"content hash matches; signature not checked: no public key with id {code.kid} (pass --key)",
            data,
        )
    message = signed_message(
        label.fields, model=code.model, algorithm=code.algorithm, kid=code.kid, content_hash=code.content_hash
    )
    if key.algorithm != code.algorithm or not key.verify(message, code.signature):
        return Finding("implicit", "tampered", "the signature does not match the label fields", data)
    return Finding(
        "implicit", "valid", f"signed ({code.algorithm}, key {code.kid}), content hash matches", data
    )


def check_watermark(data: bytes, fmt: str, produce_id: str | None) -> Finding:
    if fmt not in IMAGE_FORMATS:
        return Finding("watermark", "not-applicable", f"no invisible watermark for {fmt}")
    module, reason = optional_label_module("watermark")
    if module is None:
        return Finding("watermark", "unavailable", reason)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            result = module.detect_watermark(image, produce_id)
    except MissingDependencyError as exc:
        return Finding("watermark", "unavailable", str(exc))
    found = {"confidence": float(result.confidence), "payload": result.payload}
    if result.found:
        return Finding("watermark", "valid", f"watermark found (confidence {result.confidence:.2f})", found)
    return Finding("watermark", "absent", "no watermark detected", found)


def check_c2pa(data: bytes, fmt: str) -> Finding:
    if fmt not in ("png", "jpeg", "webp", "wav"):
        return Finding("c2pa", "not-applicable", f"no C2PA embedding for {fmt}")
    module, reason = optional_label_module("c2pa")
    if module is None:
        return Finding("c2pa", "unavailable", reason)
    try:
        report = module.read_c2pa(data, fmt)
    except MissingDependencyError as exc:
        return Finding("c2pa", "unavailable", str(exc))
    extra: dict[str, Any] = {"problems": list(report.problems)}
    if not report.present:
        return Finding("c2pa", "absent", "no C2PA manifest", extra)
    if report.valid:
        trusted = getattr(report, "trusted", None)
        extra["trusted"] = trusted
        note = " (its certificate chain is not a trusted one)" if trusted is False else ""
        return Finding("c2pa", "valid", f"C2PA manifest present and valid{note}", extra)
    return Finding("c2pa", "tampered", "C2PA manifest invalid: " + "; ".join(report.problems), extra)


def unreadable(path: str, fmt: str, error: DataError) -> FileReport:
    """A file whose labels cannot be read: an unsupported format (missing), or a broken container
    of a supported one (malformed: its labels cannot be trusted)."""
    state: State = "missing" if fmt == "unknown" else "malformed"
    return FileReport(path, fmt, [Finding("implicit", state, error.message)])
