"""`genloop run` on a user's folder: unchanged stages are skipped, added files redo what depends on them."""

from __future__ import annotations

from pathlib import Path

from genloop.catalog import open_catalog
from genloop.models.versions import resolve_model_version
from genloop.pipeline.runner import run_pipeline
from genloop.workspace import Workspace
from genloop.workspace_init import init_workspace
from support.mnist import write_digit_files

TINY_OVERRIDES = {
    "epochs = 20": "epochs = 1",
    "image_size = 32": "image_size = 28",
    "channels = 3": "channels = 1",
    "latent_dim = 32": "latent_dim = 4",
    "hidden_channels = 32": "hidden_channels = 8",
    "samples_per_class = 100": "samples_per_class = 4",
    "per_class = 8": "per_class = 1",
}


def _images_workspace(root: Path) -> Workspace:
    config = init_workspace(root, "images", name="shoes")
    text = config.read_text(encoding="utf-8")
    for old, new in TINY_OVERRIDES.items():
        text = text.replace(old, new)
    config.write_text(text, encoding="utf-8")
    # Every 10th MNIST digit spans several classes: 60 images, 6 per class on average.
    write_digit_files(root / "data" / "images", range(0, 60))
    return Workspace(root)


def test_adding_images_reruns_dependents_and_config_edits_rerun_only_their_stage(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GENLOOP_DATABASE_URL", raising=False)
    ws = _images_workspace(tmp_path / "project")
    catalog = open_catalog(ws.database_url)

    first = {r.stage: r for r in run_pipeline(ws, catalog)}
    assert all(r.status == "ran" for r in first.values())
    assert {r.status for r in run_pipeline(ws, catalog)} == {"cached"}
    # How data steps run is not what they produce: another executor re-runs nothing.
    assert {r.status for r in run_pipeline(ws, catalog, executor="ray", workers=1)} == {"cached"}

    # Ten new images: collect and everything downstream run again, on more records.
    write_digit_files(ws.root / "data" / "images", range(60, 70))
    second = {r.stage: r for r in run_pipeline(ws, catalog)}
    assert all(r.status == "ran" for r in second.values())
    assert second["annotate"].outputs["dataset"] != first["annotate"].outputs["dataset"]

    # A generate-only edit re-runs generate and publish, nothing before them.
    config = ws.config_path.read_text(encoding="utf-8").replace("per_class = 1", "per_class = 2")
    ws.config_path.write_text(config, encoding="utf-8")
    third = {r.stage: r.status for r in run_pipeline(Workspace(ws.root), catalog)}
    assert third == {
        "collect": "cached",
        "clean": "cached",
        "annotate": "cached",
        "train": "cached",
        "evaluate": "cached",
        "generate": "ran",
        "publish": "ran",
    }


def test_dry_run_changes_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GENLOOP_DATABASE_URL", raising=False)
    ws = _images_workspace(tmp_path / "project")
    catalog = open_catalog(ws.database_url)
    planned = run_pipeline(ws, catalog, dry_run=True)
    assert [r.status for r in planned] == ["would run"] * 7
    assert not ws.path("datasets").exists() or not any(ws.path("datasets").iterdir())


def test_with_gates_a_retrained_model_becomes_challenger_not_champion(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GENLOOP_DATABASE_URL", raising=False)
    ws = _images_workspace(tmp_path / "project")
    gate = '\n[[gates]]\nmetric = "conditional_accuracy"\nrule = "at_least"\nvalue = 0.5\n'
    ws.config_path.write_text(ws.config_path.read_text(encoding="utf-8") + gate, encoding="utf-8")
    catalog = open_catalog(ws.database_url)
    first = {r.stage: r for r in run_pipeline(ws, catalog, until="train")}
    assert first["train"].outputs["model_version"] == "shoes-v1"
    assert resolve_model_version(catalog, "shoes@champion") == "shoes-v1"  # nothing to compare with yet

    config = ws.config_path.read_text(encoding="utf-8").replace("latent_dim = 4", "latent_dim = 3")
    ws.config_path.write_text(config, encoding="utf-8")
    second = {r.stage: r for r in run_pipeline(Workspace(ws.root), catalog, until="train")}
    assert second["train"].outputs["model_version"] == "shoes-v2"
    assert resolve_model_version(catalog, "shoes@champion") == "shoes-v1"  # promotion is gated
    assert resolve_model_version(catalog, "shoes@challenger") == "shoes-v2"
