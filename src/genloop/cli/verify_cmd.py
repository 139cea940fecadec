"""`genloop verify FILE…`: read every AI-content label back and say what survived.

Exit code: 0 when every label present is valid, 1 when anything is tampered or
malformed, 2 when a required label is missing (the worst over all files). Public keys
for the signatures: `--key` files, else the workspace's `.genloop/keys/*.pub`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genloop.cli.common import WorkspaceOption, examples
from genloop.errors import DataError, GenloopError, WorkspaceError
from genloop.generate.labels.formats import detect_format
from genloop.generate.labels.signing import PublicKey, load_public_key
from genloop.generate.labels.verify import FileReport, unreadable, verify_bytes
from genloop.workspace import Workspace

_STYLE = {
    "valid": "green",
    "present": "cyan",
    "tampered": "bold red",
    "malformed": "bold red",
    "missing": "yellow",
    "absent": "dim",
    "unavailable": "dim",
    "not-checked": "dim",
    "not-applicable": "dim",
}


def _workspace(workspace: Path | None) -> Workspace | None:
    try:
        return Workspace(workspace.resolve()) if workspace else Workspace.find()
    except WorkspaceError:
        return None


def _keys(paths: list[Path], ws: Workspace | None) -> list[PublicKey]:
    keys = [load_public_key(path) for path in paths]
    key_dir = ws.state_dir / "keys" if ws else None
    for path in sorted(key_dir.glob("*.pub")) if key_dir and key_dir.is_dir() else []:
        try:
            keys.append(load_public_key(path))
        except GenloopError:
            continue  # a stray file in the key folder does not stop verification
    return keys


def _text_line(ws: Workspace | None) -> str | None:
    """The workspace's configured marker line (verify also knows the usual ones)."""
    if ws is None or not ws.config_path.is_file():
        return None
    try:
        return ws.config.generate.labels.text_line
    except GenloopError:
        return None


def verify_file(path: Path, keys: list[PublicKey], text_line: str | None = None) -> FileReport:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GenloopError(f"cannot read {path}: {exc.strerror}", hint="check the path") from exc
    fmt = "unknown"
    try:
        fmt = detect_format(data, path.name)
        return verify_bytes(data, fmt, keys, str(path), text_line=text_line)
    except DataError as exc:
        return unreadable(str(path), fmt, exc)


def _table(reports: list[FileReport]) -> Table:
    table = Table(show_lines=False)
    for column in ("file", "label", "state", "detail"):
        table.add_column(column, overflow="fold")
    for report in reports:
        for i, finding in enumerate(report.findings):
            notes = finding.data.get("notes", [])
            lenient = f" [dim](read leniently: {escape('; '.join(notes))})[/dim]" if notes else ""
            table.add_row(
                escape(report.path) if i == 0 else "",
                finding.kind,
                f"[{_STYLE.get(finding.state, '')}]{finding.state}[/]",
                escape(finding.detail) + lenient,
            )
    return table


def register(app: typer.Typer) -> None:
    @app.command(
        "verify",
        epilog=examples(
            "genloop verify .genloop/content/*.png",
            "genloop verify story.md --key aigc-ed25519.pub --json",
        ),
    )
    def verify(
        files: Annotated[
            list[Path], typer.Argument(help="Files to check (png, jpeg, webp, wav, mid, txt, md, musicxml).")
        ],
        key: Annotated[
            list[Path] | None,
            typer.Option("--key", help="Public key file (Ed25519 PEM or SM2 hex); repeat for several."),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print one JSON document instead of a table.")
        ] = False,
        workspace: WorkspaceOption = None,
    ) -> None:
        """Read every AI-content label back (visible mark, GB 45438 metadata, watermark, C2PA).

        Exit 0: every label present is valid; 1: something was tampered with or is malformed;
        2: a required label (the metadata, the text line) is missing.
        """
        ws = _workspace(workspace)
        keys, text_line = _keys(list(key or []), ws), _text_line(ws)
        reports = [verify_file(path, keys, text_line) for path in files]
        codes = {report.exit_code for report in reports}
        code = 1 if 1 in codes else 2 if 2 in codes else 0
        if as_json:
            typer.echo(
                json.dumps(
                    {"exit_code": code, "files": [r.as_dict() for r in reports]}, ensure_ascii=False, indent=2
                )
            )
        else:
            Console().print(_table(reports))
        raise typer.Exit(code)
