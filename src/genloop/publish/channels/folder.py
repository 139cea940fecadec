"""The folder channel: each publication exported as its file plus a sidecar JSON, for a CMS,
a shared drive or an rsync job to pick up.

    [channels.shared]
    kind = "folder"
    path = "exports/shared"      # relative to the workspace root

    exports/shared/<publication_id>.png     the published copy (propagator fields filled)
    exports/shared/<publication_id>.json    sidecar: publication, content (model version,
                                            condition, seed), labels, safety verdicts, lineage

Both are written atomically (temp file + fsync + rename), the file before its sidecar, so a
reader that waits for the `.json` never sees half a file. Names come from the publication id
(hex), and every target is checked to resolve inside the folder: nothing is written outside.
Publishing again re-exports a publication whose sidecar is missing (a crash, a deleted file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genloop.catalog import Catalog
from genloop.catalog.lineage import lineage_for_content
from genloop.catalog.models import ContentItem, Publication
from genloop.errors import ConfigError, GenloopError
from genloop.publish.channels.registry import ChannelSetup, register_channel
from genloop.publish.publication import place
from genloop.storage import atomic_write_bytes, sha256_hex
from genloop.workspace import Workspace


@register_channel("folder")
class FolderChannel:
    def __init__(self, setup: ChannelSetup) -> None:
        if setup.workspace is None:
            raise ConfigError(
                f"the folder channel {setup.name!r} needs a workspace to export from",
                hint="call publish_content(..., workspace=Workspace.find()) or use the CLI",
            )
        if not setup.policy.path:
            raise ConfigError(
                f"[channels.{setup.name}] has kind folder but no path",
                hint=f'add path = "exports/{setup.name}" (relative to the workspace root)',
            )
        self.setup = setup
        self.name = setup.name
        self.workspace: Workspace = setup.workspace
        self.folder = self.workspace.resolve_user_path(setup.policy.path).resolve()

    def publish(self, catalog: Catalog, content_item_id: str, *, arm: str | None = None) -> str:
        placement = place(self.setup, catalog, content_item_id, arm=arm)
        if placement.created or not self._sidecar(placement.publication_id).is_file():
            export_publication(self.workspace, catalog, placement.publication_id, self.folder)
        return placement.publication_id

    def _sidecar(self, publication_id: str) -> Path:
        return self.folder / f"{publication_id}.json"


def _inside(folder: Path, name: str) -> Path:
    target = (folder / name).resolve()
    if not target.is_relative_to(folder):
        raise GenloopError(
            f"refusing to write {name!r}: it resolves outside the export folder {folder}",
            hint="check the channel's path and that no symlink in it points elsewhere",
        )
    return target


def export_publication(workspace: Workspace, catalog: Catalog, publication_id: str, folder: Path) -> Path:
    """Write the publication's file and sidecar into `folder`; the sidecar's path."""
    with catalog.session() as session:
        publication = session.get(Publication, publication_id)
        if publication is None or publication.path is None:
            raise GenloopError(f"publication {publication_id!r} has no published copy to export")
        item = session.get(ContentItem, publication.content_item_id)
        assert item is not None  # a foreign key
        copy = workspace.artifact(publication.path)
        sidecar = _sidecar(publication, item)
    data = copy.read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    file_target = _inside(folder, f"{publication_id}{copy.suffix.lower()}")
    sidecar["file"] = {"name": file_target.name, "sha256": sha256_hex(data), "bytes": len(data)}
    sidecar["lineage"] = lineage_for_content(catalog, sidecar["content"]["id"])
    sidecar_target = _inside(folder, f"{publication_id}.json")
    atomic_write_bytes(file_target, data)
    text = json.dumps(sidecar, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    atomic_write_bytes(sidecar_target, text.encode("utf-8"))
    return sidecar_target


def _sidecar(publication: Publication, item: ContentItem) -> dict[str, Any]:
    return {
        "publication": {
            "id": publication.id,
            "channel": publication.channel,
            "arm": publication.arm,
            "published_at": publication.published_at.isoformat(),
        },
        "content": {
            "id": item.id,
            "modality": item.modality,
            "model_version_id": item.model_version_id,
            "condition": item.condition,
            "seed": item.seed,
            "params": item.params,
            "created_at": item.created_at.isoformat(),
        },
        "labels": item.labels,
        "verdicts": item.verdicts,
    }
