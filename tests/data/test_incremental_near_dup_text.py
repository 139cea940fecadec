"""Incremental near-dup for text: a new collection is MinHash-deduplicated against earlier cleans.

The earlier texts' signatures persist in `.genloop/dedup/NAME/near-text/`; the drop
reason names the old record, where it came from and its dataset version, like
incremental exact dedup does.
"""

from __future__ import annotations

from pathlib import Path

from genloop.catalog import open_catalog
from genloop.config import CleanConfig, CollectConfig
from genloop.data.clean import CleanResult, clean
from genloop.data.collect import collect
from genloop.data.datasets import DatasetHandle
from genloop.workspace import Workspace

TEXTS = [
    "The harbour was quiet that morning, and the fishing boats rocked gently against the old stone pier.",
    "She kept a notebook of every bird she saw, with the date, the weather and a small pencil sketch.",
    "Our train left the valley at dawn and climbed slowly through the pine forest toward the pass.",
    "He repaired clocks in a narrow shop where the ticking never stopped, not even on Sunday evenings.",
    "The library closed early in winter, so the students gathered in the warm kitchen to study instead.",
    "A thin fog rolled over the fields, hiding the fences and the sheep until the sun burned it away.",
]
NEW = [
    "Every spring the river flooded the lower meadow and the children built rafts from driftwood planks.",
    "The baker opened at five, and by six the queue of sleepy neighbours reached the end of the street.",
]


def write_texts(folder: Path, texts: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text + "\n", encoding="utf-8")


def collect_folder(ws: Workspace, folder: str) -> DatasetHandle:
    cfg = CollectConfig(source="folder", path=folder, modality="text", license="CC0-1.0", test_fraction=0.0)
    return collect(ws, open_catalog(ws.database_url), cfg, name="notes").dataset


def clean_collection(ws: Workspace, collection: DatasetHandle) -> CleanResult:
    return clean(
        ws, open_catalog(ws.database_url), collection, CleanConfig(incremental_dedup=True), shard_size=3
    )


def where_of(result: CleanResult) -> dict[str, str]:
    return {r.meta["path"]: r.id for r in result.dataset.iter_records()}


def test_edited_copies_of_earlier_texts_are_dropped_naming_the_old_record(
    sqlite_workspace: Workspace,
) -> None:
    ws = sqlite_workspace
    write_texts(ws.root / "first", {f"{i}.txt": text for i, text in enumerate(TEXTS)})
    first = clean_collection(ws, collect_folder(ws, "first"))
    assert first.report["kept"] == len(TEXTS)
    assert (ws.state_dir / "dedup" / "notes" / "near-text").is_dir()

    edited = {
        "a.txt": TEXTS[0].replace("quiet", "silent"),  # one word changed
        "b.txt": TEXTS[3].replace("clocks", "watches").rstrip("."),  # one word and the full stop
        "c.txt": TEXTS[4],  # an exact copy
        **{f"new{i}.txt": text for i, text in enumerate(NEW)},
    }
    write_texts(ws.root / "second", edited)
    second_collection = collect_folder(ws, "second")
    second = clean_collection(ws, second_collection)
    assert sorted(where_of(second)) == ["second/new0.txt", "second/new1.txt"]
    dropped = second.report["dropped"]
    assert dropped["near-duplicate text of an earlier version"]["count"] == 2
    assert dropped["exact duplicate of an earlier version"]["count"] == 1
    old = where_of(first)
    examples = sorted(dropped["near-duplicate text of an earlier version"]["examples"])
    for example, old_path in zip(examples, ["first/0.txt", "first/3.txt"], strict=True):
        assert (
            f"of {old[old_path][:12]} ({old_path}) in earlier dataset version {first.dataset.id}" in example
        )
        assert "near-duplicate text (Jaccard≈0." in example
    [step] = [s for s in second.report["steps"] if s["name"] == "incremental-dedup"]
    assert step["counters"] == {f"matched dataset version {first.dataset.id}": 3}

    # A third collection is compared with both earlier ones: an edit of a text only the second kept.
    write_texts(
        ws.root / "third", {"x.txt": NEW[1].replace("sleepy ", ""), "y.txt": TEXTS[5], "z.txt": NEW[0][::-1]}
    )
    third = clean_collection(ws, collect_folder(ws, "third"))
    reasons = third.report["dropped"]["near-duplicate text of an earlier version"]["examples"]
    assert len(reasons) == 1 and f"earlier dataset version {second.dataset.id}" in reasons[0]
    assert "exact duplicate of an earlier version" in third.report["dropped"]

    # Re-cleaning the second collection compares it with the first only, not with itself or the third.
    again = clean_collection(ws, second_collection)
    assert again.dataset.id == second.dataset.id and again.report == second.report
