"""License filter: only allow-listed licenses pass, with a reason naming the license and the list."""

from __future__ import annotations

import pytest

from genloop.catalog import open_catalog
from genloop.config import CleanConfig, CollectConfig
from genloop.data.clean import clean, clean_steps
from genloop.data.collect import collect
from genloop.data.record import Record
from genloop.data.steps.license_filter import LicenseFilter
from genloop.errors import DataError
from genloop.workspace import Workspace


def record(text: str, license_: str) -> Record:
    return Record.create(text.encode(), modality="text", label=None, source="t", license=license_)


def test_records_outside_the_allow_list_are_dropped_with_the_license_named() -> None:
    batch = [record("a", "MIT"), record("b", "GPL-3.0+"), record("c", "cc0-1.0"), record("d", "unknown")]
    output = LicenseFilter(["MIT", "CC0-1.0"])(batch)
    assert [r.payload for r in output.kept] == [b"a", b"c"]  # SPDX ids match case-insensitively
    assert [str(reason) for _, reason in output.dropped] == [
        "license 'GPL-3.0+' not in the allow-list [MIT, CC0-1.0]",
        "license 'unknown' not in the allow-list [MIT, CC0-1.0]",
    ]
    assert {getattr(reason, "kind", None) for _, reason in output.dropped} == {"license not allowed"}


def test_no_allow_list_allows_every_license_and_adds_no_step() -> None:
    batch = [record("a", "GPL-3.0+"), record("b", "unknown")]
    assert LicenseFilter(None)(batch).kept == batch
    assert "license" not in [step.name for step in clean_steps({"text"}, CleanConfig())]
    names = [step.name for step in clean_steps({"text", "image"}, CleanConfig(licenses=["MIT"]))]
    assert names[0] == "license"  # first: nothing is decoded for a record that will be dropped anyway


def only(**settings: object) -> CleanConfig:
    """Clean settings with the other engineers' text quality and near-dup steps off: not under test here."""
    return CleanConfig.model_validate(
        {"text": {"quality": False, "near_dup": False}, "incremental_dedup": False, **settings}
    )


def _collect_text(ws: Workspace) -> None:
    data = ws.root / "data" / "notes"
    data.mkdir(parents=True, exist_ok=True)
    (data / "one.txt").write_text("first note, long enough", encoding="utf-8")
    (data / "two.txt").write_text("second note, long enough", encoding="utf-8")


def test_clean_drops_a_disallowed_source_and_reports_it(sqlite_workspace: Workspace) -> None:
    _collect_text(sqlite_workspace)
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = CollectConfig(source="folder", path="data", license="GPL-3.0+", modality="text")
    collected = collect(sqlite_workspace, catalog, cfg, name="notes")
    with pytest.raises(DataError) as raised:
        clean(sqlite_workspace, catalog, collected.dataset, only(licenses=["MIT", "CC0-1.0"]))
    message = str(raised.value)
    assert "2 license not allowed" in message
    assert "data/notes/one.txt: license 'GPL-3.0+' not in the allow-list [MIT, CC0-1.0]" in message

    allowed = clean(sqlite_workspace, catalog, collected.dataset, only(licenses=["gpl-3.0+"]))
    assert allowed.report["kept"] == 2
    assert "license not allowed" not in allowed.report["dropped"]
