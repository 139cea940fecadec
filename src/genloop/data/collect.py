"""The collect stage: read a source into a dataset version of stage "collect".

Collection keeps everything it can read, broken files included, and refuses only
what it must not read (files over `max_file_bytes`) or cannot (permissions); each
refusal is a problem message naming the file. Judging content is the clean stage's
job, where every drop is counted with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

from genloop.catalog import Catalog
from genloop.config import CollectConfig
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.data.sources.registry import get_source
from genloop.errors import DataError
from genloop.progress import Advance, stage_progress
from genloop.workspace import Workspace


@dataclass(frozen=True)
class CollectResult:
    dataset: DatasetHandle
    problems: list[str]
    """Files refused or skipped, one message each, naming the file."""

    @property
    def input_errors(self) -> int:
        """Input problems (files or lines refused, skipped or unreadable): exit status 3 when any."""
        return len(self.problems)


def _counted(records: Iterable[Record], advance: Advance) -> Iterator[Record]:
    for record in records:
        yield record
        advance(1)


def collect(workspace: Workspace, catalog: Catalog, cfg: CollectConfig, *, name: str) -> CollectResult:
    """Collect `cfg.source` into a new dataset version named `name` (streamed, shard by shard)."""
    source = get_source(cfg.source)
    problems: list[str] = []
    records = iter(source(workspace, cfg, problems))
    first = next(records, None)  # sources raise their own DataError (naming the folder) when empty
    if first is None:
        raise DataError(
            f"source {cfg.source!r} produced no records",
            hint="check [collect] in genloop.toml; `genloop collect --dry-run` shows what would be read",
        )
    # `problems` fills up while the records stream; the manifest is assembled only after
    # the last record, so passing the list itself records every problem.
    # `input_errors` likewise: filled in after the last record (`genloop collect` exits 3 when > 0).
    errors: dict[str, int] = {"count": 0}
    extra = {
        "modality": first.modality,
        "collect": cfg.model_dump(mode="json"),
        "problems": problems,
        "input_errors": errors,
    }

    def then_count(records: Iterator[Record]) -> Iterator[Record]:
        yield from records
        errors["count"] = len(problems)

    with stage_progress("collect", total=cfg.limit) as advance:
        dataset = write_dataset_version(
            workspace,
            catalog,
            then_count(_counted(chain([first], records), advance)),
            name=name,
            stage="collect",
            shard_size=cfg.shard_size,
            extra=extra,
        )
    return CollectResult(dataset, problems)
