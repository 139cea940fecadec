"""`folder`: the user's own files, one record per file, class = first sub-folder.

    data/images/cat/001.png    -> label "cat"
    data/images/cat/2024/7.jpg -> label "cat" (deeper folders keep the top class)
    data/images/loose.png      -> label None (annotate drops it, saying why)

With `modality = "text"` each `.txt` file is one record, labelled the same way;
with `modality = "music"` each `.mid/.midi/.musicxml/.mxl/.xml` file.
Files are read as raw bytes: decoding and checking them is the clean stage's job,
so a broken file is reported there with its path rather than lost here. Hidden
files and folders (`.DS_Store`, `.git/`) are skipped silently; files with other
extensions and files over `max_file_bytes` are skipped with a problem message (a
huge file is never read into memory).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources.registry import register_source
from genloop.errors import ConfigError, DataError
from genloop.workspace import Workspace

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
TEXT_SUFFIXES = frozenset({".txt"})
MUSIC_SUFFIXES = frozenset({".mid", ".midi", ".musicxml", ".mxl", ".xml"})
EXAMPLES_PER_MESSAGE = 5


def human_bytes(size: int) -> str:
    """`30.2 MB`, `20 MB`, `512 bytes`: short sizes for messages."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _what_to_put(cfg: CollectConfig, shown: str) -> str:
    if cfg.modality == "text":
        return (
            "put .txt files in it, one record per file, in a sub-folder per class "
            f"(e.g. {shown}/positive/001.txt)"
        )
    if cfg.modality == "music":
        return (
            "put MIDI or MusicXML files (.mid, .musicxml, .mxl) in it, one sub-folder per class "
            f"(e.g. {shown}/bach/001.mid)"
        )
    return f"put images (.png, .jpg, ...) in it, one sub-folder per class (e.g. {shown}/cat/001.png)"


def _folder_root(workspace: Workspace, cfg: CollectConfig) -> Path:
    if not cfg.path:
        raise ConfigError(
            "[collect].path is not set; the `folder` source needs the folder to read",
            hint='add `path = "data/images"` under [collect] in genloop.toml (relative to the workspace)',
        )
    root = workspace.resolve_user_path(cfg.path)
    if not root.is_dir():
        state = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"[collect].path {cfg.path} ({root}) {state}", hint=_what_to_put(cfg, cfg.path))
    return root


def _display_path(workspace: Workspace, path: Path) -> str:
    """The path relative to the workspace when it is inside it, else absolute."""
    try:
        return path.relative_to(workspace.root).as_posix()
    except ValueError:
        return path.as_posix()


def _walk(root: Path) -> Iterator[Path]:
    """Every visible file under `root`, in a stable (sorted) order."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def _read(path: Path, shown: str, cfg: CollectConfig, problems: list[str]) -> bytes | None:
    """The file's bytes, or None (with a problem message) if it is too large or unreadable."""
    try:
        size = path.stat().st_size
        if size > cfg.max_file_bytes:
            problems.append(
                f"{shown}: {human_bytes(size)} exceeds max_file_bytes "
                f"({human_bytes(cfg.max_file_bytes)}); skipped"
            )
            return None
        return path.read_bytes()
    except OSError as exc:
        problems.append(f"{shown}: cannot read ({exc.strerror or exc}); skipped")
        return None


@dataclass
class _OtherFiles:
    """Files with other extensions: counted, with a few examples (a folder may hold millions)."""

    count: int = 0
    suffixes: set[str] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)

    def add(self, shown: str) -> None:
        self.count += 1
        self.suffixes.add(Path(shown).suffix or "(no extension)")
        if len(self.examples) < EXAMPLES_PER_MESSAGE:
            self.examples.append(shown)

    def report(self, cfg: CollectConfig, problems: list[str]) -> None:
        if self.count:
            more = ", ..." if self.count > len(self.examples) else ""
            problems.append(
                f"skipped {self.count} file(s) that are not {cfg.modality} files "
                f"({', '.join(sorted(self.suffixes))}): {', '.join(self.examples)}{more}"
            )


def _record(payload: bytes, path: Path, root: Path, shown: str, cfg: CollectConfig) -> Record:
    parts = path.relative_to(root).parts
    return Record.create(
        payload,
        modality=cfg.modality,
        label=parts[0] if len(parts) > 1 else None,
        source=f"folder:{cfg.path}",
        license=cfg.license or "unknown",
        test_fraction=cfg.test_fraction,
        meta={"path": shown, "bytes": len(payload)},
    )


@register_source("folder")
def folder(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    root = _folder_root(workspace, cfg)
    shown_root = _display_path(workspace, root)
    suffixes = {"text": TEXT_SUFFIXES, "music": MUSIC_SUFFIXES}.get(cfg.modality, IMAGE_SUFFIXES)
    others = _OtherFiles()
    yielded = 0
    for path in _walk(root):
        shown = _display_path(workspace, path)
        if path.suffix.lower() not in suffixes:
            others.add(shown)
        elif (payload := _read(path, shown, cfg, problems)) is not None:
            yield _record(payload, path, root, shown, cfg)
            yielded += 1
            if cfg.limit is not None and yielded >= cfg.limit:
                break
    others.report(cfg, problems)
    if yielded == 0:
        details = "".join(f"\n  {problem}" for problem in problems)
        raise DataError(
            f"nothing usable in {shown_root}: no readable {cfg.modality} files{details}",
            hint=_what_to_put(cfg, shown_root),
        )
    if cfg.license is None:
        problems.append(
            f"no [collect].license set: records from {shown_root} are marked license 'unknown'; "
            "set it to the SPDX id of your data (e.g. CC-BY-4.0) so lineage can say what may be used"
        )
