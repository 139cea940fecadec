"""Artifact storage: atomic writes (temp file, fsync, rename), staged directories, content hashes.

A crash at any point leaves either the old file or the new one, never half of one,
so nothing genloop loads later can be truncated. Paths may be local or any fsspec
URL; local paths get the full fsync + rename treatment.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fsspec


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_hash(value: Any, length: int = 16) -> str:
    """Hash of a JSON-serialisable value, independent of dict order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_hex(text.encode("utf-8"))[:length]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so a reader sees the old file or the whole new one."""
    path_str = str(path)
    if "://" in path_str and not path_str.startswith("file://"):
        fs, target = fsspec.core.url_to_fs(path_str)
        tmp = f"{target}.tmp-{os.getpid()}"
        with fs.open(tmp, "wb") as handle:
            handle.write(data)
        fs.mv(tmp, target)
        return
    target = Path(path_str.removeprefix("file://"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        _fsync_dir(target.parent)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, value: Any) -> None:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def staging_directory(parent: Path, name: str = "staging") -> Iterator[Path]:
    """A temporary directory beside its final place; deleted if the block fails.

    Pair with `commit_directory` once the final name is known (content addressing
    often learns it only after writing).
    """
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent))
    staging.chmod(0o755)  # mkdtemp makes it 0700; the final directory should look like any other
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def commit_directory(staging: Path, final: Path, *, replace: bool = True) -> bool:
    """fsync every file in `staging`, then rename it to `final` in one step.

    With `replace=False` an existing `final` is kept (same content address, same
    content) and the staging folder is discarded. Returns whether it was renamed.
    """
    if final.exists() and not replace:
        shutil.rmtree(staging, ignore_errors=True)
        return False
    for child in staging.rglob("*"):
        if child.is_file():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    _fsync_dir(final.parent)
    return True


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Build a directory under a temporary name; rename it into place only on success.

    Used for checkpoints and model versions: a directory that exists under its
    final name is always complete.
    """
    with staging_directory(final.parent, final.name) as staging:
        yield staging
        commit_directory(staging, final)


def remove_partials(folder: Path) -> None:
    """Delete leftovers of directories that a killed process was still building."""
    if folder.is_dir():
        for partial in folder.glob(".*.partial"):
            shutil.rmtree(partial, ignore_errors=True)
