"""A published copy of a C2PA-signed item: re-signed when the certificate is configured (its
manifest stays valid), otherwise the broken manifest is noted and `verify` reports it."""

from __future__ import annotations

from pathlib import Path

import pytest

from genloop.catalog.models import ContentItem
from genloop.generate.labels.apply import optional_label_module
from genloop.generate.labels.formats import find_labels
from genloop.generate.labels.signing import load_public_key
from genloop.generate.labels.verify import verify_bytes
from genloop.publish import publish_items
from genloop.workspace import DATABASE_URL_ENV
from publish.conftest import CHANNELS_TOML, make_items

C2PA_TOML = (
    CHANNELS_TOML
    + """
[generate.labels]
c2pa = true
c2pa_certificate = "chain/signer.pem"
c2pa_key = "chain/signer.key"
"""
)


def test_c2pa_is_re_signed_or_the_breakage_is_noted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module, reason = optional_label_module("c2pa")
    if module is None or not module.c2pa_available():
        pytest.skip(f"C2PA unavailable: {reason or 'c2pa-python not installed'}")
    from genloop.generate.labels.certificates import make_test_chain

    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    make_test_chain(tmp_path / "ws" / "chain")
    items = make_items(tmp_path / "ws", C2PA_TOML)
    workspace, catalog = items.workspace, items.catalog
    first = items.content_ids[0]
    with catalog.session() as session:
        item = session.get(ContentItem, first)
        assert item is not None and item.labels["c2pa"]["state"] == "signed"
    key = load_public_key(workspace.state_dir / "keys" / "aigc-ed25519.pub")

    def states(publication_id: str) -> dict[str, str]:
        data = (workspace.state_dir / "published" / f"{publication_id}.png").read_bytes()
        assert find_labels(data, "png")[0].fields["PropagateID"] == publication_id
        return {f.kind: f.state for f in verify_bytes(data, "png", [key]).findings}

    [signed] = publish_items(catalog, [first], "gallery", workspace=workspace)
    assert states(signed)["c2pa"] == "valid" and states(signed)["implicit"] == "valid"

    config = workspace.config
    labels = config.generate.labels.model_copy(update={"c2pa_certificate": None})
    unsigned_config = config.model_copy(
        update={"generate": config.generate.model_copy(update={"labels": labels})}
    )
    [broken] = publish_items(catalog, [first], "news", workspace=workspace, config=unsigned_config)
    assert states(broken)["c2pa"] == "tampered" and states(broken)["implicit"] == "valid"
    with catalog.session() as session:
        item = session.get(ContentItem, first)
        assert item is not None
        assert item.labels["published"][signed]["notes"] == [
            "c2pa: re-signed after the propagator fields were written"
        ]
        assert item.labels["published"][broken]["notes"][0].startswith("c2pa: invalidated")
