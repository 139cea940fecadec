"""(being written: issue #7 [serve]): structured logs and request ids."""

from __future__ import annotations

from fastapi import FastAPI


def install_logging(app: FastAPI) -> None:
    del app
