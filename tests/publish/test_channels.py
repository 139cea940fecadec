"""Channels on real generated items: the published copy carries the GB 45438 propagator
fields with a still-valid signature, publishing is idempotent and refuses what is not
publishable, the folder export is complete and never leaves its folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from genloop.catalog.models import ContentItem, Publication
from genloop.errors import ConfigError, GenloopError
from genloop.generate.labels.formats import find_labels
from genloop.generate.labels.signing import load_public_key
from genloop.generate.labels.verify import verify_bytes
from genloop.generate.review import reject
from genloop.publish import publish_content, publish_items
from genloop.publish.channels.registry import get_channel
from publish.conftest import Published


def _states(data: bytes, workspace_root: Path) -> dict[str, str]:
    key = load_public_key(workspace_root / ".genloop" / "keys" / "aigc-ed25519.pub")
    return {f.kind: f.state for f in verify_bytes(data, "png", [key]).findings}


def test_published_copy_has_propagator_fields_and_a_valid_signature(items: Published) -> None:
    workspace, catalog = items.workspace, items.catalog
    first = items.content_ids[0]
    with catalog.session() as session:
        original_path = workspace.artifact(session.get(ContentItem, first).path)  # type: ignore[union-attr]
    original = original_path.read_bytes()

    [publication_id] = publish_items(catalog, [first], "gallery", workspace=workspace, arm="B")

    with catalog.session() as session:
        publication = session.get(Publication, publication_id)
        item = session.get(ContentItem, first)
        assert publication is not None and item is not None
        assert (publication.arm, publication.channel, item.status) == ("B", "gallery", "published")
        copy_path = workspace.artifact(publication.path or "")
        record = item.labels["published"][publication_id]
    assert copy_path == workspace.state_dir / "published" / f"{publication_id}.png"
    copy = copy_path.read_bytes()
    label = find_labels(copy, "png")[0].fields
    # [channels.gallery] has no propagator of its own: [generate].producer publishes it
    assert (label["ContentPropagator"], label["PropagateID"]) == ("press-studio", publication_id)
    assert record["ContentPropagator"] == "press-studio" and record["notes"] == []
    assert _states(copy, workspace.root)["implicit"] == "valid"  # the signature survives
    assert original_path.read_bytes() == original  # the generator's file is untouched
    assert find_labels(original, "png")[0].fields["PropagateID"] == ""

    # idempotent: the same item on the same channel is the same publication, one row, one file
    assert publish_items(catalog, [first], "gallery", workspace=workspace) == [publication_id]
    with catalog.session() as session:
        count = session.scalar(select(func.count()).select_from(Publication))
    assert count == 1 and len(list((workspace.state_dir / "published").iterdir())) == 1


def test_review_and_rejected_items_are_refused_and_nothing_is_stored(items: Published) -> None:
    workspace, catalog = items.workspace, items.catalog
    rejected = items.content_ids[1]
    reject(catalog, [rejected], reason="looks like a real person", actor="ana")
    with pytest.raises(GenloopError, match="is rejected: it cannot be published"):
        get_channel("news", workspace=workspace).publish(catalog, rejected)
    outcome = publish_content(catalog, items.content_ids, "news", workspace=workspace)
    assert outcome.held == {rejected: "rejected"} and len(outcome.publications) == 2
    with catalog.session() as session:
        on_news = session.scalars(select(Publication.content_item_id)).all()
    assert rejected not in on_news and len(on_news) == 2
    assert len(list((workspace.state_dir / "published").iterdir())) == 2


def test_folder_export_writes_file_and_sidecar_with_lineage(items: Published) -> None:
    workspace, catalog = items.workspace, items.catalog
    first = items.content_ids[0]
    [publication_id] = publish_items(catalog, [first], "shared", workspace=workspace, arm="A")
    folder = workspace.root / "exports" / "shared"
    assert sorted(p.name for p in folder.iterdir()) == [f"{publication_id}.json", f"{publication_id}.png"]
    exported = (folder / f"{publication_id}.png").read_bytes()
    assert exported == (workspace.state_dir / "published" / f"{publication_id}.png").read_bytes()
    assert find_labels(exported, "png")[0].fields["ContentPropagator"] == "shared-drive"

    sidecar = json.loads((folder / f"{publication_id}.json").read_text(encoding="utf-8"))
    assert sidecar["publication"] == {
        "id": publication_id,
        "channel": "shared",
        "arm": "A",
        "published_at": sidecar["publication"]["published_at"],
    }
    assert sidecar["content"]["id"] == first and sidecar["content"]["model_version_id"] == "tiny-vae-v1"
    assert sidecar["content"]["condition"] == {"label": "a"} and isinstance(sidecar["content"]["seed"], int)
    assert sidecar["labels"]["implicit"]["AIGC"]["ProduceID"] == first
    assert sidecar["labels"]["published"][publication_id]["ContentPropagator"] == "shared-drive"
    assert isinstance(sidecar["verdicts"], list)
    assert sidecar["lineage"]["model_version"]["id"] == "tiny-vae-v1"
    assert [p["id"] for p in sidecar["lineage"]["publications"]] == [publication_id]
    assert sidecar["file"]["bytes"] == len(exported)

    # a lost sidecar is written again by publishing again (same publication)
    (folder / f"{publication_id}.json").unlink()
    assert publish_items(catalog, [first], "shared", workspace=workspace) == [publication_id]
    assert (folder / f"{publication_id}.json").is_file()


def test_traversal_in_channel_names_ids_and_export_targets_is_refused(
    items: Published, tmp_path: Path
) -> None:
    workspace, catalog = items.workspace, items.catalog
    for bad in ("../x", "a/b", "..", "", "x" * 65):
        with pytest.raises(GenloopError, match="invalid channel name"):
            publish_content(catalog, items.content_ids[:1], bad, workspace=workspace)
    for bad_id in ("../../etc/passwd", "a/b", ".."):
        with pytest.raises(GenloopError, match="invalid content item id"):
            publish_content(catalog, [bad_id], "shared", workspace=workspace)
    with pytest.raises(ConfigError, match="unknown publication channel 'elsewhere'"):
        get_channel("elsewhere", workspace=workspace)

    # a symlink planted in the export folder must not make the export write outside it
    outside = tmp_path / "outside"
    outside.mkdir()
    second = items.content_ids[1]
    from genloop.publish.publication import publication_id_for

    publication_id = publication_id_for(second, "shared")
    folder = workspace.root / "exports" / "shared"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{publication_id}.png").symlink_to(outside / "stolen.png")
    with pytest.raises(GenloopError, match="resolves outside the export folder"):
        publish_items(catalog, [second], "shared", workspace=workspace)
    assert list(outside.iterdir()) == []


def test_folder_and_webhook_channels_need_their_settings(items: Published) -> None:
    config = items.workspace.config.model_copy(deep=True)
    config.channels["nopath"] = config.channels["shared"].model_copy(update={"path": None})
    config.channels["hook"] = config.channels["gallery"].model_copy(update={"kind": "webhook"})
    with pytest.raises(ConfigError, match="no path"):
        get_channel("nopath", workspace=items.workspace, config=config)
    with pytest.raises(ConfigError, match="no http"):
        get_channel("hook", workspace=items.workspace, config=config)
    config.channels["hook"] = config.channels["hook"].model_copy(update={"url": "http://127.0.0.1:9/x"})
    with pytest.raises(ConfigError, match="no secret_env"):
        get_channel("hook", workspace=items.workspace, config=config)
