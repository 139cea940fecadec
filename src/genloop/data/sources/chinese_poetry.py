"""The npm `chinese-poetry` corpus (全唐诗, 57,607 Tang poems, MIT), read when it is present.

`tang-poems` always reads the 313 + 95 poems of Debian's fortunes-zh; with this corpus
unpacked on the machine it adds every poem of the 全唐诗 too. It is an 85 MB npm pack
of which only `package/dist/quantangshi` is needed (the Song shi in the same folder,
`poet.song.*.json`, are not Tang poems and are skipped). Install, offline afterwards::

    mkdir -p ~/.cache/genloop/chinese-poetry && cd ~/.cache/genloop/chinese-poetry \\
      && npm pack chinese-poetry@2.0.1 \\
      && tar xzf chinese-poetry-2.0.1.tgz package/dist/quantangshi && rm chinese-poetry-2.0.1.tgz

Where it is looked for, first found wins: `[collect].path` (relative to the workspace;
the folder holding `package/`, the `package` folder, or `quantangshi` itself), then
`$GENLOOP_CHINESE_POETRY` (same forms), then `~/.cache/genloop/chinese-poetry`. A
`[collect].path` that holds no corpus is an error with the install line above;
elsewhere absence just means fortunes-zh alone.

Files are `poet.tang.<first index>.json`, each a JSON list of
`{"author", "title", "paragraphs": [line, ...], "id"}` in traditional characters;
each poem becomes one record laid out like the fortunes-zh ones (`《title》`, `作者：…`,
the lines), converted to simplified characters with OpenCC `t2s` (the original title
and author stay in meta). A file that is not valid JSON, or an entry that is not an
object, is a collect problem naming the file (and entry index), and reading goes on;
the 4 poems without any lines are skipped like blank fortunes (nothing to read).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources.builtin_text import text_record
from genloop.errors import DataError, MissingDependencyError
from genloop.workspace import Workspace

ENV = "GENLOOP_CHINESE_POETRY"
DEFAULT_DIR = Path("~/.cache/genloop/chinese-poetry")
INSTALL = (
    "mkdir -p ~/.cache/genloop/chinese-poetry && cd ~/.cache/genloop/chinese-poetry && "
    "npm pack chinese-poetry@2.0.1 && tar xzf chinese-poetry-2.0.1.tgz package/dist/quantangshi "
    "&& rm chinese-poetry-2.0.1.tgz"
)
LICENSE = "MIT"
LABEL = "quantangshi"
PROVENANCE = "npm chinese-poetry 2.0.1 (全唐诗, github.com/chinese-poetry), OpenCC t2s"
_FILE = re.compile(r"poet\.tang\.(\d+)\.json")


def quantangshi_dir(folder: Path) -> Path | None:
    """The `quantangshi` folder of an unpacked corpus given any of its accepted roots, or None."""
    for candidate in (folder / "package" / "dist" / "quantangshi", folder / "dist" / "quantangshi", folder):
        if candidate.is_dir() and any(candidate.glob("poet.tang.*.json")):
            return candidate
    return None


def find_corpus(workspace: Workspace | None, cfg: CollectConfig) -> Path | None:
    """Where the corpus is (see the module docstring), None when absent; DataError for a wrong path."""
    if cfg.path:
        given = Path(cfg.path).expanduser()
        if not given.is_absolute() and workspace is not None:
            given = workspace.root / given
        found = quantangshi_dir(given)
        if found is None:
            raise DataError(
                f"[collect].path = {cfg.path!r} holds no chinese-poetry corpus "
                "(expected package/dist/quantangshi/poet.tang.*.json under it)",
                hint=f"install it: {INSTALL}; then set path to that folder, or remove path",
            )
        return found
    for root in (os.environ.get(ENV), DEFAULT_DIR):
        if root and (found := quantangshi_dir(Path(root).expanduser())) is not None:
            return found
    return None


def _simplifier() -> Callable[[str], str]:
    try:
        import opencc
    except ImportError:
        raise MissingDependencyError(
            "the chinese-poetry corpus is traditional Chinese; simplifying it needs OpenCC",
            hint="pip install opencc",
        ) from None
    convert: Callable[[str], str] = opencc.OpenCC("t2s").convert
    return convert


def corpus_files(folder: Path) -> list[Path]:
    """`poet.tang.*.json` in corpus order (by the index in the name, not alphabetically)."""
    numbered = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _FILE.fullmatch(p.name))]
    return [path for _, path in sorted(numbered)]


def poem_text(poem: dict[str, Any]) -> str:
    lines = [str(line).strip() for line in poem.get("paragraphs") or [] if str(line).strip()]
    head = [f"《{str(poem.get('title') or '').strip()}》"] if poem.get("title") else []
    head += [f"作者：{str(poem['author']).strip()}"] if poem.get("author") else []
    return "\n".join([*head, *lines]) if lines else ""


def read_corpus(folder: Path, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    """Every Tang poem of the corpus in `folder`, simplified, in corpus order."""
    simplify = _simplifier()
    for path in corpus_files(folder):
        try:
            poems = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{path}: not a chinese-poetry JSON file ({exc}); file skipped")
            continue
        if not isinstance(poems, list):
            problems.append(f"{path}: expected a JSON list of poems; file skipped")
            continue
        for index, poem in enumerate(poems):
            if not isinstance(poem, dict):
                problems.append(f"{path}:poem {index}: not a JSON object; skipped")
                continue
            text = poem_text(poem)
            if not text:  # 4 of the 57,607 have no lines: nothing to read, like a blank fortune
                continue
            meta = {
                "path": path.as_posix(),
                "entry": index,
                "title": poem.get("title"),
                "author": poem.get("author"),
                "poem_id": poem.get("id"),
                "provenance": PROVENANCE,
            }
            yield text_record(
                simplify(text), label=LABEL, source="tang-poems", license=LICENSE, cfg=cfg, meta=meta
            )
