"""`genloop data diff` and `genloop data sample`: look inside dataset versions.

These commands join the `data` group defined in `data_cmds.py` (registered after it).
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from typing import Annotated, Any

import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import DatasetVersion
from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.cli.data_cmds import data_app
from genloop.data.datasets import DatasetHandle, open_dataset_version
from genloop.data.record import Record
from genloop.errors import NotFoundError

SHOWN_IDS = 5
PREVIEW_CHARS = 80


def find_version_id(catalog: Catalog, version: str) -> str:
    """The id of the dataset version whose id is `version` or starts with it (a unique prefix)."""
    with catalog.session() as session:
        if session.get(DatasetVersion, version) is not None:
            return version
        ids = sorted(
            session.scalars(select(DatasetVersion.id).where(DatasetVersion.id.startswith(version))).all()
        )
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise NotFoundError(
            f"no dataset version {version!r}", hint="`genloop data ls` lists the dataset versions"
        )
    raise NotFoundError(
        f"{version!r} matches {len(ids)} dataset versions: {', '.join(ids)}", hint="give more of the id"
    )


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def _labels_by_id(dataset: DatasetHandle) -> dict[str, str | None]:
    """Record id → label, reading only those two columns of each shard."""
    labels: dict[str, str | None] = {}
    for shard in dataset.shards():
        table = pq.read_table(shard, columns=["id", "label"])
        labels.update(zip(table["id"].to_pylist(), table["label"].to_pylist(), strict=True))
    return labels


def version_diff(a: DatasetHandle, b: DatasetHandle) -> dict[str, Any]:
    """Records added, removed and relabelled from `a` to `b`, and the label counts of both."""
    la, lb = _labels_by_id(a), _labels_by_id(b)
    added = sorted(set(lb) - set(la))
    removed = sorted(set(la) - set(lb))
    relabelled = sorted(rid for rid in set(la) & set(lb) if la[rid] != lb[rid])
    count_a = Counter(str(v) if v is not None else "(none)" for v in la.values())
    count_b = Counter(str(v) if v is not None else "(none)" for v in lb.values())
    labels = sorted(set(count_a) | set(count_b))
    return {
        "a": a.id,
        "b": b.id,
        "records": [len(la), len(lb)],
        "added": {"count": len(added), "examples": added[:SHOWN_IDS]},
        "removed": {"count": len(removed), "examples": removed[:SHOWN_IDS]},
        "relabelled": {
            "count": len(relabelled),
            "examples": [{"id": rid, "from": la[rid], "to": lb[rid]} for rid in relabelled[:SHOWN_IDS]],
        },
        "labels": {label: [count_a[label], count_b[label]] for label in labels},
    }


@data_app.command(
    "diff",
    epilog=examples("genloop data diff 3f2a9c 81be07", "genloop data diff 3f2a9c 81be07 --json"),
)
def diff_versions(
    a: Annotated[str, typer.Argument(help="The older dataset version (id or unique prefix).")],
    b: Annotated[str, typer.Argument(help="The newer dataset version (id or unique prefix).")],
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """What changed between two dataset versions: records added, removed, relabelled; label counts."""
    ctx = open_context(workspace)
    handles = [
        open_dataset_version(ctx.workspace, ctx.catalog, find_version_id(ctx.catalog, v)) for v in (a, b)
    ]
    diff = version_diff(*handles)
    if as_json:
        typer.echo(json.dumps(diff, indent=2, ensure_ascii=False))
        return
    console = _console()
    console.print(
        f"[bold]{diff['a']}[/bold] ({diff['records'][0]} records) → "
        f"[bold]{diff['b']}[/bold] ({diff['records'][1]} records)"
    )
    for key in ("added", "removed", "relabelled"):
        shown = diff[key]["examples"]
        text = ", ".join(
            e["id"][:12] + f" {e['from']}→{e['to']}" if isinstance(e, dict) else e[:12] for e in shown
        )
        console.print(f"  {key:<10} {diff[key]['count']}" + (f"  e.g. {text}" if text else ""))
    table = Table("label", diff["a"], diff["b"], "change")
    for label, (na, nb) in diff["labels"].items():
        table.add_row(label, str(na), str(nb), f"{nb - na:+d}")
    console.print(table)


def _preview(record: Record) -> str:
    if record.modality == "text":
        text = " ".join(record.payload.decode("utf-8", errors="replace").split())
        return text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else "")
    if record.modality == "image":
        import io

        from PIL import Image

        with Image.open(io.BytesIO(record.payload)) as image:
            return f"{image.format} {image.width}×{image.height} {image.mode}"
    return f"{len(record.payload)} bytes"


def sample_records(
    dataset: DatasetHandle, n: int, *, seed: int = 0, label: str | None = None, split: str | None = None
) -> list[Record]:
    """`n` records drawn uniformly (reservoir sampling: one pass, memory for `n`), in dataset order."""
    rng = random.Random(seed)
    chosen: list[tuple[int, Record]] = []
    seen = 0
    for index, record in enumerate(dataset.iter_records(split)):
        if label is not None and record.label != label:
            continue
        seen += 1
        if len(chosen) < n:
            chosen.append((index, record))
        elif (slot := rng.randrange(seen)) < n:
            chosen[slot] = (index, record)
    return [record for _, record in sorted(chosen, key=lambda pair: pair[0])]


@data_app.command(
    "sample",
    epilog=examples(
        "genloop data sample 3f2a9c -n 5",
        "genloop data sample 3f2a9c -n 20 --label refund --seed 1",
        "genloop data sample 3f2a9c --split test --json",
    ),
)
def sample_version(
    version: Annotated[str, typer.Argument(help="Dataset version id (or a unique prefix of it).")],
    n: Annotated[int, typer.Option("-n", "--count", min=1, help="How many records.")] = 5,
    label: Annotated[str | None, typer.Option("--label", help="Only records with this label.")] = None,
    split: Annotated[str | None, typer.Option("--split", help="Only this split (train, test).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same sample).")] = 0,
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """Show a few random records of a dataset version: id, label, split, source, a preview."""
    ctx = open_context(workspace)
    dataset = open_dataset_version(ctx.workspace, ctx.catalog, find_version_id(ctx.catalog, version))
    records = sample_records(dataset, n, seed=seed, label=label, split=split)
    if as_json:
        for r in records:
            row = {
                "id": r.id,
                "modality": r.modality,
                "label": r.label,
                "split": r.split,
                "source": r.source,
                "license": r.license,
                "preview": _preview(r),
                "meta": r.meta,
            }
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table(
        "id",
        "label",
        "split",
        "source",
        "preview",
        title=f"{len(records)} of {dataset.manifest['records']} records",
    )
    for r in records:
        table.add_row(r.id[:12], r.label or "-", r.split, r.source, _preview(r))
    _console().print(table)


def register(app: typer.Typer) -> None:
    """Nothing to mount: the commands above joined the `data` group when this module was imported."""
