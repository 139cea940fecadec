"""The rejects shard (dropped records with step and reason) and `genloop data report` on real versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from genloop.catalog import open_catalog
from genloop.cli.main import app
from genloop.config import AnnotateConfig, CleanConfig, CollectConfig
from genloop.data.annotate.labels import annotate
from genloop.data.clean import CleanResult, clean
from genloop.data.collect import collect
from genloop.data.rejects import REJECTS_FILE, iter_rejects
from genloop.data.report import render_report
from genloop.workspace import Workspace


def only(**settings: object) -> CleanConfig:
    """Clean settings without near-dup and incremental dedup (not under test here; they link runs)."""
    base = {
        "text": {"quality": False, "near_dup": False},
        "image": {"near_dup": False},
        "incremental_dedup": False,
    }
    return CleanConfig.model_validate({**base, **settings})


def save(path: Path, pixels: np.ndarray) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path.read_bytes()


def noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (16, 16))


@pytest.fixture
def images(sqlite_workspace: Workspace) -> Workspace:
    """3 good images, and a blank, a truncated and a duplicate one, in two class folders."""
    root = sqlite_workspace.root / "data"
    first = save(root / "cat" / "good-0.png", noise(0))
    save(root / "cat" / "good-1.png", noise(1))
    save(root / "dog" / "good-2.png", noise(2))
    save(root / "dog" / "blank.png", np.zeros((16, 16)))
    (root / "dog" / "truncated.png").write_bytes(first[: len(first) // 2])
    (root / "dog" / "copy.png").write_bytes(first)
    return sqlite_workspace


def collect_and_clean(ws: Workspace, cfg: CleanConfig, *, modality: str = "image") -> CleanResult:
    catalog = open_catalog(ws.database_url)
    collecting = CollectConfig(source="folder", path="data", license="CC0-1.0", modality=modality)
    collected = collect(ws, catalog, collecting, name="pets")
    return clean(ws, catalog, collected.dataset, cfg, shard_size=2)


def test_rejects_shard_holds_every_dropped_record_with_step_and_reason(images: Workspace) -> None:
    result = collect_and_clean(images, only(write_rejects=True))
    manifest = result.dataset.manifest
    assert manifest["rejects"]["file"] == REJECTS_FILE
    assert manifest["rejects"]["records"] == 3
    shard = result.dataset.path / REJECTS_FILE
    assert shard.is_file()
    assert pq.read_table(shard).num_rows == 3
    rejects = sorted(iter_rejects(result.dataset), key=lambda reject: reject.record.where)
    assert [(r.record.where, r.step, r.kind) for r in rejects] == [
        ("data/dog/blank.png", "blank-image", "blank image"),
        ("data/dog/copy.png", "exact-dedup", "exact duplicate"),
        ("data/dog/truncated.png", "decode-image", "truncated image"),
    ]
    assert rejects[0].reason == "blank image (std=0.0 < 2.0)"
    assert rejects[1].reason.startswith("exact duplicate of ") and "data/cat/good-0.png" in rejects[1].reason
    # The truncated file is kept byte for byte as it was collected (what a person needs to inspect).
    assert rejects[2].record.payload == (images.root / "data" / "dog" / "truncated.png").read_bytes()
    kept = sorted(r.meta["path"] for r in result.dataset.iter_records())
    assert kept == ["data/cat/good-0.png", "data/cat/good-1.png", "data/dog/good-2.png"]


def test_no_rejects_shard_unless_asked(images: Workspace) -> None:
    result = collect_and_clean(images, only())
    assert "rejects" not in result.dataset.manifest
    assert not (result.dataset.path / "rejects").exists()
    assert list(iter_rejects(result.dataset)) == []
    assert list((images.state_dir / "tmp").glob("*")) == []  # nothing left behind either way


def test_pii_counts_per_type_reach_the_manifest(sqlite_workspace: Workspace) -> None:
    notes = sqlite_workspace.root / "data" / "notes"
    notes.mkdir(parents=True)
    (notes / "a.txt").write_text("请联系 13812345678 或 zhang@example.com", encoding="utf-8")
    (notes / "b.txt").write_text("server 10.0.0.7, phone 13912345678", encoding="utf-8")
    result = collect_and_clean(sqlite_workspace, only(), modality="text")
    pii_step = next(step for step in result.report["steps"] if step["name"] == "pii")
    assert pii_step["counters"] == {"pii:EMAIL": 1, "pii:IP": 1, "pii:PHONE": 2}
    texts = sorted(r.payload.decode() for r in result.dataset.iter_records())
    assert texts == ["server [IP], phone [PHONE]", "请联系 [PHONE] 或 [EMAIL]"]

    off = collect_and_clean(sqlite_workspace, only(pii=False), modality="text")
    assert "pii" not in [step["name"] for step in off.report["steps"]]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output + (repr(result.exception) if result.exception else "")


def test_data_report_cli_writes_a_self_contained_html_report(images: Workspace, tmp_path: Path) -> None:
    result = collect_and_clean(images, only(write_rejects=True))
    target = tmp_path / "out" / "report.html"
    code, output = invoke("data", "report", result.dataset.id[:8], "-w", str(images.root), "-o", str(target))
    assert code == 0, output
    assert str(target) in output.replace("\n", "")
    html = target.read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in html
    for text in (
        "blank image",
        "truncated image",
        "exact duplicate",
        "data/dog/blank.png",
        "data/dog/copy.png",
    ):
        assert text in html
    assert html.count('src="data:image/png;base64,') == 2  # blank + duplicate; the truncated one cannot show
    assert "CC0-1.0" in html and "folder:data" in html
    assert "http://" not in html and "https://" not in html  # no CDN: it renders offline


def test_data_report_defaults_to_the_newest_clean_version(images: Workspace) -> None:
    first = collect_and_clean(images, only())
    save(images.root / "data" / "cat" / "good-3.png", noise(3))  # new data: a new clean version
    newest = collect_and_clean(images, only())
    assert newest.dataset.id != first.dataset.id
    code, output = invoke("data", "report", "-w", str(images.root))
    assert code == 0, output
    written = images.root / "reports" / f"data-{newest.dataset.id}.html"
    html = written.read_text(encoding="utf-8")
    assert newest.dataset.id in html and first.dataset.id not in html
    assert "data/dog/blank.png: blank image (std=0.0 &lt; 2.0)" in html  # examples from the manifest
    assert "Set <code>[clean] write_rejects = true</code>" in html  # a hint where thumbnails could be


def test_report_of_an_annotate_version_covers_its_clean_version_too(images: Workspace) -> None:
    cleaned = collect_and_clean(images, only(write_rejects=True))
    catalog = open_catalog(images.database_url)
    annotated = annotate(images, catalog, cleaned.dataset, AnnotateConfig(classes=["cat"]))
    html = render_report(images, catalog, annotated.dataset.id)
    assert "blank image" in html  # from the clean version
    assert "data/dog/good-2.png" in html  # dropped by annotate: its label is not in the classes
    assert json.dumps(annotated.dataset.manifest["labels"]) == '{"cat": 2}'


def test_report_for_a_missing_version_says_what_to_do(images: Workspace) -> None:
    code, output = invoke("data", "report", "-w", str(images.root))
    assert code != 0
    assert "no clean dataset version yet" in output
