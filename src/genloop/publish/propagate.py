"""The published copy: the content file with the GB 45438 propagator fields filled.

GB 45438-2025 Annex E leaves two fields of the implicit `AIGC` label to whoever spreads
the content: `ContentPropagator` (who publishes it) and `PropagateID` (their id for it).
Publishing writes a copy of the item's file with both filled — the propagator is the
channel's `propagator` (else `[generate].producer`) and the id is the publication id —
under `.genloop/published/<publication_id><ext>`. The original in `.genloop/content/`
stays byte-for-byte what the generator signed.

The implicit label's signature does not cover these two fields, so it stays valid. A C2PA
manifest's hard binding covers every byte, so the copy's manifest would break:

* the item's labels say C2PA was signed and `[generate.labels]` has `c2pa_certificate` and
  `c2pa_key` → the copy is re-signed (`labels.c2pa.sign_c2pa`) and its manifest is valid;
* otherwise the copy keeps the old, now invalid manifest, the publication records a note
  (`c2pa: invalidated ...`) and `genloop verify` on the copy reports `c2pa: tampered`.

A file without a readable AIGC label (generated with `implicit = false`) is copied
unchanged, with a note saying so: publishing never signs on the generator's behalf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genloop.config import GenloopConfig
from genloop.errors import DataError, GenloopError, NotFoundError
from genloop.generate.labels.apply import optional_label_module, set_propagator
from genloop.generate.labels.formats import find_labels, format_from_extension
from genloop.storage import atomic_write_bytes
from genloop.workspace import Workspace

PUBLISHED_DIRNAME = "published"


@dataclass(frozen=True)
class PublishedCopy:
    path: Path
    propagator: str
    notes: list[str] = field(default_factory=list)

    def record(self, workspace: Workspace, publication_id: str) -> dict[str, Any]:
        """What the item's labels keep about this copy (`labels.published[publication_id]`)."""
        return {
            "path": workspace.relative(self.path),
            "ContentPropagator": self.propagator,
            "PropagateID": publication_id,
            "notes": list(self.notes),
        }


def published_path(workspace: Workspace, publication_id: str, extension: str) -> Path:
    return workspace.path(PUBLISHED_DIRNAME, f"{publication_id}{extension}")


def write_published_copy(
    workspace: Workspace,
    config: GenloopConfig,
    *,
    source: str,
    labels: dict[str, Any],
    model_version: str,
    publication_id: str,
    propagator: str,
) -> PublishedCopy:
    """Write the published copy of the file at catalogued path `source`; see the module doc."""
    original = workspace.artifact(source)
    if not original.is_file():
        raise NotFoundError(
            f"the file of this content item is missing: {original}",
            hint="generate it again (`genloop generate`) before publishing",
        )
    extension = original.suffix.lower()
    fmt = format_from_extension(original.name)
    data = original.read_bytes()
    notes: list[str] = []
    if fmt is None or not find_labels(data, fmt):
        notes.append("implicit: the file carries no AIGC label; copied unchanged (no propagator fields)")
    else:
        try:
            data = set_propagator(data, fmt, propagator, publication_id)
        except DataError as error:
            notes.append(f"implicit: propagator fields not written ({error.message}); copied unchanged")
        else:
            data = _keep_c2pa(workspace, data, fmt, config, labels, model_version, notes)
    target = published_path(workspace, publication_id, extension)
    atomic_write_bytes(target, data)
    return PublishedCopy(target, propagator, notes)


def _keep_c2pa(
    workspace: Workspace,
    data: bytes,
    fmt: str,
    config: GenloopConfig,
    labels: dict[str, Any],
    model_version: str,
    notes: list[str],
) -> bytes:
    """Re-sign the C2PA manifest the propagator fields broke, when the item had one and we can."""
    if (labels.get("c2pa") or {}).get("state") != "signed":
        return data
    label_config = config.generate.labels
    if not label_config.c2pa_certificate or not label_config.c2pa_key:
        notes.append(
            "c2pa: invalidated by the propagator fields and not re-signed "
            "([generate.labels] c2pa_certificate / c2pa_key are not set)"
        )
        return data
    module, reason = optional_label_module("c2pa")
    if module is None:
        notes.append(f"c2pa: invalidated by the propagator fields and not re-signed ({reason})")
        return data
    try:
        signed: bytes = module.sign_c2pa(
            data,
            fmt,
            certificate=workspace.resolve_user_path(label_config.c2pa_certificate),
            key=workspace.resolve_user_path(label_config.c2pa_key),
            model_version=model_version,
            producer=config.generate.producer,
        )
    except GenloopError as error:
        notes.append(f"c2pa: invalidated by the propagator fields; re-signing failed ({error.message})")
        return data
    notes.append("c2pa: re-signed after the propagator fields were written")
    return signed
