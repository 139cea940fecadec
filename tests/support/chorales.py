"""Real Bach chorales (music21's corpus, converted to MIDI by the `bach-chorales` source) as
dataset versions; converting takes ~0.3 s a chorale, so the records are cached per process."""

from __future__ import annotations

from functools import cache

from genloop.catalog import open_catalog
from genloop.config import CollectConfig
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.data.sources.music import bach_chorales
from genloop.workspace import Workspace

CLASSES = ["major", "minor"]


@cache
def chorale_records(count: int) -> tuple[Record, ...]:
    """The first `count` chorales (Riemenschneider order) as music records, split "train"."""
    problems: list[str] = []
    cfg = CollectConfig(source="bach-chorales", modality="music", limit=count, test_fraction=0.0)
    records = tuple(bach_chorales(None, cfg, problems))  # type: ignore[arg-type]  # the source ignores it
    assert not problems and len(records) == count, problems
    return records


def chorale_dataset(
    workspace: Workspace, *, train: int = 8, test: int = 2, name: str = "chorales"
) -> DatasetHandle:
    """A stage-"annotate" dataset of `train` + `test` chorales labelled major / minor."""
    records = chorale_records(train + test)
    split = [r.with_changes(split="train" if i < train else "test") for i, r in enumerate(records)]
    catalog = open_catalog(workspace.database_url)
    return write_dataset_version(workspace, catalog, split, name=name, stage="annotate", classes=CLASSES)
