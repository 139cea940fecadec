"""`genloop keys` (being written: issue #7 [serve])."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    del app
