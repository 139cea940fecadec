"""Stale staging left by killed runs is removed when the next clean starts.

Kept: the work directory the run resumes from, and anything a live process holds a lock
on. Removed: other work directories of the stage last touched before the run, and
rejects folders (`.rejects.*.partial`) of killed runs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from filelock import FileLock

from genloop.catalog import open_catalog
from genloop.config import CleanConfig
from genloop.data.clean import clean
from genloop.data.datasets import write_dataset_version
from genloop.data.executors.local import LocalExecutor
from genloop.data.record import Record
from genloop.workspace import Workspace


def stale_work(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "shard-00000.done").write_text("{}", encoding="utf-8")
    (root / f"{name}.lock").touch()
    an_hour_ago = time.time() - 3600
    os.utime(folder, (an_hour_ago, an_hour_ago))
    return folder


def test_clean_removes_stale_work_and_rejects_but_not_live_ones(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    texts = [f"Line number {i} of a small notebook about boats." for i in range(6)] + ["tiny"]
    records = [
        Record.create(t.encode(), modality="text", label=None, source="n", license="CC0-1.0") for t in texts
    ]
    dataset = write_dataset_version(ws, open_catalog(ws.database_url), records, name="notes", stage="collect")

    work_root = ws.state_dir / "work" / "clean"
    killed = stale_work(work_root, "0123abcd-ffffffffffff")  # a killed run, another config
    live = stale_work(work_root, "4567abcd-eeeeeeeeeeee")  # a run going on in another process
    killed_rejects = ws.state_dir / "tmp" / ".rejects.abc.partial"
    killed_rejects.mkdir(parents=True)
    (killed_rejects / "rejects.parquet").write_bytes(b"half written")
    live_rejects = ws.state_dir / "tmp" / ".rejects.def.partial"
    live_rejects.mkdir(parents=True)

    with FileLock(str(live.with_suffix(".lock"))), FileLock(str(live_rejects / ".lock")):
        result = clean(
            ws,
            open_catalog(ws.database_url),
            dataset,
            CleanConfig(write_rejects=True),
            executor=LocalExecutor(4, 1),
        )
        assert result.report["kept"] >= 1
        assert not killed.exists() and not killed.with_suffix(".lock").exists()
        assert not killed_rejects.exists()
        assert live.is_dir() and live_rejects.is_dir()
    assert [p.name for p in work_root.iterdir() if p.is_dir()] == [live.name]  # its own work went at the end
