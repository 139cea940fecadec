"""Text and Markdown: the label as a front-matter line `AIGC: {json}` at the top.

    ---
    AIGC: {"Label":"1",...}
    ---
    body

The same block is used for .txt and .md (a YAML front matter that Markdown tools skip).
When the text already opens with front matter, the line goes first inside it. Read
leniently: the key in any case, `=` for `:`, trailing spaces, CRLF, a BOM, and a block
at the end of the file (a trailer) as well as at the top. The content hash covers the
text without the AIGC line (and without the block when nothing else was in it), CRLF
read as LF.
"""

from __future__ import annotations

import re

from genloop.generate.labels.formats.common import decode_text, sha256_hash

_LINE = re.compile(r"^[ \t]*[\"']?aigc[\"']?[ \t]*[:=].*$", re.IGNORECASE)
_FENCE = re.compile(r"^[ \t]*---[ \t]*$")


def _lines(data: bytes) -> list[str]:
    return decode_text(data, "text").replace("\r\n", "\n").split("\n")


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line index of the front-matter block and of a trailing block, fences included."""
    blocks = []
    if lines and _FENCE.match(lines[0]):
        for end in range(1, min(len(lines), 200)):
            if _FENCE.match(lines[end]):
                blocks.append((0, end))
                break
    tail = len(lines) - 1
    while tail > 0 and not lines[tail].strip():
        tail -= 1
    if tail > 0 and _FENCE.match(lines[tail]) and (not blocks or blocks[0][1] < tail):
        for start in range(tail - 1, max(-1, tail - 200), -1):
            if _FENCE.match(lines[start]):
                if not blocks or start > blocks[0][1]:
                    blocks.append((start, tail))
                break
    return blocks


def texts(data: bytes) -> list[tuple[str, str]]:
    lines = _lines(data)
    found: list[tuple[str, str]] = []
    for first, last in _blocks(lines):
        where = "front matter" if first == 0 else "trailer"
        found.extend((f"text {where}", lines[i]) for i in range(first + 1, last) if _LINE.match(lines[i]))
    return found


def strip_label(data: bytes) -> str:
    """The text without its AIGC line(s), a block left empty removed with it."""
    lines = _lines(data)
    drop: set[int] = set()
    for first, last in _blocks(lines):
        inside = [i for i in range(first + 1, last) if _LINE.match(lines[i])]
        drop.update(inside)
        if inside and len(inside) == last - first - 1:
            drop.update((first, last))
    return "\n".join(line for i, line in enumerate(lines) if i not in drop)


def write(data: bytes, json_text: str) -> bytes:
    body = strip_label(data)
    line = f"AIGC: {json_text}"
    lines = body.split("\n")
    blocks = _blocks(lines)
    if blocks and blocks[0][0] == 0:
        return "\n".join([lines[0], line, *lines[1:]]).encode("utf-8")
    return f"---\n{line}\n---\n{body}".encode()


def content_hash(data: bytes) -> str:
    return sha256_hash("text/1", strip_label(data).encode("utf-8"))


def body_text(data: bytes) -> str:
    """The text a reader sees: without the label and without any front matter."""
    lines = strip_label(data).split("\n")
    blocks = _blocks(lines)
    if blocks and blocks[0][0] == 0:
        lines = lines[blocks[0][1] + 1 :]
    return "\n".join(lines)
