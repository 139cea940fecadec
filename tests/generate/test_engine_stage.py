"""The pipeline's generate and publish stages on the engine: [generate] drives the request, a
text model works as well as an image one, and publish holds back what waits for review."""

from __future__ import annotations

from pathlib import Path

import pytest

from genloop.catalog import open_catalog
from genloop.pipeline.stages import STAGES, StageContext
from genloop.workspace import Workspace
from support.tiny_generators import register_tiny

CONFIG = """
[project]
name = "replies"

[generate]
prompts = ["您好，", "Thanks"]
count = 2
max_new_tokens = 6
params = {temperature = 0.8, top_k = 10}
seed = 9

[channels.gallery]
review = "{review}"
"""

STAGE = {stage.name: stage for stage in STAGES}


@pytest.mark.parametrize("review", ["on-fail", "always"])
def test_generate_then_publish_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, review: str) -> None:
    monkeypatch.delenv("GENLOOP_DATABASE_URL", raising=False)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "genloop.toml").write_text(CONFIG.replace("{review}", review), encoding="utf-8")
    workspace = Workspace(tmp_path / "ws")
    catalog = open_catalog(workspace.database_url)
    ctx = StageContext(workspace, catalog)
    upstream = {"train": {"model_version": register_tiny(workspace, catalog, "gpt", tmp_path)}}
    generated = STAGE["generate"].run(ctx, upstream)
    content = generated.outputs["content"]
    assert len(content) == 4 and "4 text items" in generated.summary
    assert STAGE["generate"].valid(ctx, generated.outputs)
    assert STAGE["generate"].run(ctx, upstream).outputs == generated.outputs  # same config, same items
    published = STAGE["publish"].run(ctx, {**upstream, "generate": generated.outputs})
    if review == "always":
        assert published.outputs["publications"] == [] and "4 held back" in published.details[0]
    else:
        assert len(published.outputs["publications"]) == 4 and not published.details
