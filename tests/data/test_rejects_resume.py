"""Rejects survive a resumed clean: a killed run's finished shards keep their dropped records.

The kill is simulated the way it looks on disk: a run over the same work directory
is abandoned after a few finished shards (their `.done` markers written) and its
temporary rejects file is discarded, as a SIGKILL would. The resumed clean's rejects
shard must equal an uninterrupted run's: every reject once, in the same order.
"""

from __future__ import annotations

import random
from pathlib import Path

from genloop.catalog import open_catalog
from genloop.config import CleanConfig
from genloop.data.clean import clean, clean_steps
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.executors.local import LocalExecutor
from genloop.data.executors.resume import resumable_run, work_directory
from genloop.data.record import Record
from genloop.data.rejects import iter_rejects
from genloop.workspace import Workspace

WORDS = [
    "sea",
    "sky",
    "ship",
    "harbour",
    "rope",
    "sail",
    "gull",
    "tide",
    "storm",
    "lamp",
    "keeper",
    "island",
    "wave",
    "anchor",
]
CFG = CleanConfig(write_rejects=True, min_text_chars=12)


def sentence(seed: int) -> str:
    words = random.Random(seed).choices(WORDS, k=12)
    return " ".join(words).capitalize() + "."


def records() -> list[Record]:
    """40 texts, 4 per batch: a too-short text, an undecodable one and a duplicate recur in most batches."""
    out: list[Record] = []
    for i in range(40):
        if i % 5 == 1:
            payload = f"tiny {i}".encode()  # too short
        elif i % 7 == 3:
            payload = b"\xff\xfe\x00binary\x00" + bytes([i])  # undecodable
        elif i % 6 == 4 and i > 6:
            payload = sentence(0).encode()  # an exact duplicate of record 0
        else:
            payload = sentence(i).encode()
        out.append(
            Record.create(payload, modality="text", label=None, source=f"notes:{i}", license="CC0-1.0")
        )
    return out


def new_workspace(root: Path) -> tuple[Workspace, DatasetHandle]:
    root.mkdir(parents=True)
    (root / "genloop.toml").write_text('[project]\nname = "notes"\n', encoding="utf-8")
    ws = Workspace(root)
    dataset = write_dataset_version(
        ws, open_catalog(ws.database_url), records(), name="notes", stage="collect"
    )
    return ws, dataset


def rejects_of(ws: Workspace, dataset: DatasetHandle) -> list[tuple[str, str, str, str]]:
    result = clean(ws, open_catalog(ws.database_url), dataset, CFG, executor=LocalExecutor(4, 1))
    return [(r.step, r.record.id, r.reason, r.kind) for r in iter_rejects(result.dataset)]


def test_a_resumed_clean_keeps_every_reject_of_its_finished_shards_once(tmp_path: Path) -> None:
    reference = rejects_of(*new_workspace(tmp_path / "reference"))
    assert len(reference) > 10 and {"decode-text", "short-text", "exact-dedup"} <= {r[0] for r in reference}

    ws, dataset = new_workspace(tmp_path / "ws")
    steps = clean_steps({"text"}, CFG)
    work = work_directory(ws, "clean", dataset.id, CFG, steps)
    lost: list[object] = []  # the killed run's temporary rejects file: gone with it
    interrupted = resumable_run(
        dataset.iter_records(), steps, LocalExecutor(4, 1), work, on_rejects=lost.extend
    )
    for _ in range(15):  # some finished shards, then "killed"
        next(interrupted.kept)
    interrupted.kept.close()  # type: ignore[attr-defined]
    assert len(list(work.glob("*.done"))) >= 3 and list(work.glob("*.rejects.parquet"))

    assert rejects_of(ws, dataset) == reference
