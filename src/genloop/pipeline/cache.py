"""The stage cache: which inputs each stage last ran with, and what it produced.

`.genloop/stages.json` maps a stage name to the hash of its inputs (its config
section + its upstream outputs + a fingerprint of source files) and its outputs.
A stage whose inputs hash is unchanged, and whose outputs still exist, is skipped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from genloop.storage import atomic_write_json
from genloop.workspace import Workspace

CACHE_FILE = "stages.json"


class StageCache:
    def __init__(self, workspace: Workspace) -> None:
        self.path = workspace.path(CACHE_FILE)
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                self._entries = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                # Written atomically, so this is a hand edit gone wrong: start over (stages re-run).
                self._entries = {}

    def lookup(self, stage: str, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(stage)
        return entry["outputs"] if entry and entry.get("key") == key else None

    def last_outputs(self, stage: str) -> dict[str, Any] | None:
        entry = self._entries.get(stage)
        return entry["outputs"] if entry else None

    def store(self, stage: str, key: str, outputs: dict[str, Any]) -> None:
        self._entries[stage] = {"key": key, "outputs": outputs, "finished_at": datetime.now(UTC).isoformat()}
        atomic_write_json(self.path, self._entries)
