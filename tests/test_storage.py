import json
from pathlib import Path

import pytest

from genloop.storage import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_json,
    remove_partials,
    stable_hash,
)


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "file.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]  # no temp files left


def test_failed_directory_build_leaves_previous_version(tmp_path: Path) -> None:
    final = tmp_path / "ckpt"
    with atomic_directory(final) as staging:
        (staging / "weights").write_bytes(b"v1")
    with pytest.raises(RuntimeError), atomic_directory(final) as staging:
        (staging / "weights").write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert (final / "weights").read_bytes() == b"v1"
    assert not list(tmp_path.glob(".*.partial"))


def test_partial_directories_of_killed_processes_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".step-1.abc.partial").mkdir()
    (tmp_path / "step-0").mkdir()
    remove_partials(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0"]


def test_stable_hash_ignores_key_order() -> None:
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_atomic_json_round_trip_keeps_unicode(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "m.json", {"label": "AI生成"})
    assert json.loads((tmp_path / "m.json").read_text(encoding="utf-8")) == {"label": "AI生成"}
    assert "AI生成" in (tmp_path / "m.json").read_text(encoding="utf-8")
