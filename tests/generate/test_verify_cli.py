"""`genloop verify` on real files: table and JSON, exit codes 0 / 1 / 2, keys from --key or the workspace."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from genloop.cli.main import app
from genloop.config import LabelConfig
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, apply_labels
from genloop.workspace import Workspace

runner = CliRunner()


@pytest.fixture()
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)  # no workspace here: keys only from --key / --workspace
    workspace = tmp_path / "ws"
    context = LabelContext(Workspace(workspace), producer="genloop", model_version="m-1")
    y, x = np.mgrid[0:128, 0:128]
    image = Image.fromarray(np.stack([x * 2, y * 2, x + y], -1).astype(np.uint8))
    out: dict[str, Path] = {}
    for name, item in {
        "good.png": Artifact("c-png", "image", image, "png"),
        "good.md": Artifact("c-md", "text", "# Title\n\nA short story.\n", "md"),
    }.items():
        out[name] = tmp_path / name
        out[name].write_bytes(apply_labels(item, LabelConfig(watermark=False), context).data)
    edited = out["good.md"].read_text(encoding="utf-8").replace("short", "long")
    out["edited.md"] = tmp_path / "edited.md"
    out["edited.md"].write_text(edited, encoding="utf-8")
    plain = io.BytesIO()
    image.save(plain, format="PNG")
    out["plain.png"] = tmp_path / "plain.png"
    out["plain.png"].write_bytes(plain.getvalue())
    out["key"] = workspace / ".genloop" / "keys" / "aigc-ed25519.pub"
    out["workspace"] = workspace
    return out


def test_labelled_files_verify_with_the_public_key(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app, ["verify", str(files["good.png"]), str(files["good.md"]), "--key", str(files["key"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["exit_code"] == 0
    png, md = document["files"]
    assert png["format"] == "png" and png["labels"]["implicit"]["state"] == "valid"
    assert png["labels"]["implicit"]["AIGC"]["ProduceID"] == "c-png"
    assert md["labels"]["explicit"]["state"] == "valid" and md["labels"]["implicit"]["state"] == "valid"


def test_the_workspace_keys_are_found_with_workspace(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["verify", str(files["good.png"]), "--workspace", str(files["workspace"])])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "implicit" in result.output


def test_without_a_key_the_content_hash_still_counts(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["verify", str(files["good.png"]), "--json"])
    assert result.exit_code == 0
    implicit = json.loads(result.output)["files"][0]["labels"]["implicit"]
    assert implicit["state"] == "present" and "signature not checked" in implicit["detail"]


def test_an_edited_text_exits_1(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app, ["verify", str(files["edited.md"]), str(files["good.png"]), "--key", str(files["key"])]
    )
    assert result.exit_code == 1
    assert "tampered" in result.output


def test_an_unlabelled_file_exits_2_and_tampering_wins(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["verify", str(files["plain.png"]), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.output)["files"][0]["labels"]["implicit"]["state"] == "missing"
    both = runner.invoke(app, ["verify", str(files["plain.png"]), str(files["edited.md"])])
    assert both.exit_code == 1


def test_a_file_that_is_not_a_supported_format_is_reported(files: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    result = runner.invoke(app, ["verify", str(junk), "--json"])
    assert result.exit_code == 2
    assert "not a PNG, JPEG" in json.loads(result.output)["files"][0]["labels"]["implicit"]["detail"]
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(files["good.png"].read_bytes()[:100])
    broken = runner.invoke(app, ["verify", str(truncated), "--json"])
    assert broken.exit_code == 1
    assert json.loads(broken.output)["files"][0]["labels"]["implicit"]["state"] == "malformed"


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", str(tmp_path / "nope.png")])
    assert result.exit_code != 0
    assert "cannot read" in str(result.exception) or "nope.png" in result.output
