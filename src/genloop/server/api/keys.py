"""(being written: issue #7 [serve])."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
