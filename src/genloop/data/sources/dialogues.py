"""`support-dialogues`: chatterbot-corpus conversations, English and Chinese.

The nearest real stand-in for support tickets that ships in a package (DATA.md):
one record per conversation, written as alternating turns

    Q: What is AI?
    A: Artificial Intelligence is the branch of engineering ...

labelled with its topic file (`ai`, `computers`, ...), language in meta. Topic files
of both languages are interleaved so a `limit` still covers both.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources.builtin_text import interleave, limited, package_dir, text_record
from genloop.data.sources.registry import register_source
from genloop.errors import DataError
from genloop.workspace import Workspace

NAME = "support-dialogues"
LICENSE = "BSD-3-Clause"
LANGUAGES = ("english", "chinese")
INSTALL = "pip install chatterbot-corpus PyYAML"


def conversation_text(turns: list[Any]) -> str:
    """Alternating `Q:` / `A:` lines; YAML may turn a turn like `42` or `yes` into a non-string."""
    return "\n".join(f"{'QA'[i % 2]}: {str(turn).strip()}" for i, turn in enumerate(turns))


def _topic(
    path: Path, language: str, cfg: CollectConfig, problems: list[str], provenance: str
) -> Iterator[Record]:
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        conversations = document["conversations"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        problems.append(f"{path}: not a chatterbot corpus file ({exc}); skipped")
        return
    for index, turns in enumerate(conversations):
        if not isinstance(turns, list) or len(turns) < 2:
            continue  # a lone statement is not a dialogue
        meta = {
            "path": path.as_posix(),
            "conversation": index,
            "language": language,
            "categories": [str(c) for c in document.get("categories") or []],
            "provenance": provenance,
        }
        text = conversation_text(turns)
        yield text_record(text, label=path.stem, source=NAME, license=LICENSE, cfg=cfg, meta=meta)


@register_source(NAME)
def support_dialogues(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    root = package_dir("chatterbot_corpus", source=NAME, install=INSTALL) / "data"
    try:
        import yaml  # noqa: F401
    except ImportError:
        raise DataError(
            f"the {NAME!r} source needs PyYAML to read its files", hint=f"install it: {INSTALL}"
        ) from None
    try:
        version = metadata.version("chatterbot-corpus")
    except metadata.PackageNotFoundError:
        version = "unknown"
    provenance = f"PyPI chatterbot-corpus {version}"
    files = [(path, language) for language in LANGUAGES for path in sorted((root / language).glob("*.yml"))]
    if not files:
        raise DataError(f"no conversation files under {root}", hint=f"reinstall the corpus: {INSTALL}")
    parts = (_topic(path, language, cfg, problems, provenance) for path, language in files)
    yield from limited(interleave(parts), cfg)
