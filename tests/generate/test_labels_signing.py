"""Ed25519 and SM2 label signatures: keys created on first use, stored safely, verified."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from PIL import Image

from genloop.config import LabelConfig
from genloop.errors import ConfigError
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, apply_labels, signer_for
from genloop.generate.labels.implicit import parse_reserved_code, read_implicit_label
from genloop.generate.labels.signing import (
    ALGORITHMS,
    generate_signer,
    load_public_key,
    load_signer,
    save_signer,
)
from genloop.generate.labels.verify import verify_bytes
from genloop.workspace import Workspace


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_signatures_verify_and_reject_other_messages(algorithm: str) -> None:
    signer = generate_signer(algorithm)  # type: ignore[arg-type]
    signature = signer.sign(b"label + content hash")
    assert len(signature) == 64
    assert signer.public.verify(b"label + content hash", signature)
    assert not signer.public.verify(b"label + content hash!", signature)
    assert not generate_signer(algorithm).public.verify(b"label + content hash", signature)  # type: ignore[arg-type]
    assert signer.sign(b"label + content hash") == signature  # deterministic (SM2: derived nonce)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keys_round_trip_through_files(algorithm: str, tmp_path: Path) -> None:
    signer = generate_signer(algorithm)  # type: ignore[arg-type]
    path = tmp_path / f"k-{algorithm}.key"
    save_signer(signer, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_signer(path, algorithm)  # type: ignore[arg-type]
    public = load_public_key(path.with_suffix(".pub"))
    assert loaded.kid == signer.kid == public.kid and public.algorithm == algorithm
    assert public.verify(b"m", loaded.sign(b"m"))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_workspace_key_is_created_once_and_signs_labels(algorithm: str, tmp_path: Path) -> None:
    context = LabelContext(Workspace(tmp_path), producer="p", model_version="m-1")
    config = LabelConfig(signing_algorithm=algorithm, visible=False, watermark=False)  # type: ignore[arg-type]
    item = Artifact("c-1", "text", "hello\n", "txt")
    labelled = apply_labels(item, config, context)
    key_path = tmp_path / ".genloop" / "keys" / f"aigc-{algorithm}.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600 and key_path.with_suffix(".pub").is_file()
    first_key = key_path.read_bytes()
    # A new job (new context) reuses the stored key: labels keep verifying with the published .pub.
    again = apply_labels(item, config, LabelContext(Workspace(tmp_path), producer="p", model_version="m-1"))
    assert key_path.read_bytes() == first_key and again.data == labelled.data
    label = read_implicit_label(labelled.data)
    assert label is not None
    code = parse_reserved_code(label["ReservedCode1"])
    assert code is not None and code.algorithm == algorithm
    public = load_public_key(key_path.with_suffix(".pub"))
    assert verify_bytes(labelled.data, "txt", [public]).findings[1].state == "valid"


def test_a_key_of_the_other_algorithm_does_not_verify(tmp_path: Path) -> None:
    context = LabelContext(Workspace(tmp_path), producer="p", model_version="m")
    image = Image.new("RGB", (80, 80), (90, 120, 150))
    labelled = apply_labels(Artifact("c", "image", image, "png"), LabelConfig(watermark=False), context)
    sm2 = generate_signer("sm2").public
    implicit = verify_bytes(labelled.data, "png", [sm2]).findings[1]
    assert implicit.state == "present" and "no public key" in implicit.detail


def test_a_configured_key_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    context = LabelContext(Workspace(tmp_path), producer="p", model_version="m")
    with pytest.raises(ConfigError, match=r"nope\.key does not exist"):
        signer_for(LabelConfig(signing_key="nope.key"), context)


def test_a_configured_key_file_is_used(tmp_path: Path) -> None:
    signer = generate_signer("sm2")
    save_signer(signer, tmp_path / "mine.key")
    context = LabelContext(Workspace(tmp_path), producer="p", model_version="m")
    assert signer_for(LabelConfig(signing_algorithm="sm2", signing_key="mine.key"), context).kid == signer.kid


def test_a_junk_public_key_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "junk.pub").write_text("hello")
    with pytest.raises(ConfigError, match="neither an Ed25519"):
        load_public_key(tmp_path / "junk.pub")
