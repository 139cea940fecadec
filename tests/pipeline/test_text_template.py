"""The text template: a user's text folder becomes a versioned, licensed dataset and a GPT."""

from __future__ import annotations

from pathlib import Path

import pytest

from genloop.catalog import open_catalog
from genloop.data.datasets import open_dataset_version
from genloop.models.versions import load_model_version
from genloop.pipeline.runner import run_pipeline
from genloop.workspace import Workspace
from genloop.workspace_init import init_workspace


def test_text_template_runs_its_declared_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENLOOP_DATABASE_URL", raising=False)
    init_workspace(tmp_path, "text", name="replies")
    config = tmp_path / "genloop.toml"  # the template's "cpu" preset trains for minutes; a test has seconds
    config.write_text(config.read_text().replace('preset = "cpu"', 'preset = "tiny"'), encoding="utf-8")
    folder = tmp_path / "data" / "text"
    (folder / "refund").mkdir(parents=True)
    (folder / "refund" / "a.txt").write_text(
        "您好，退款将在三个工作日内原路退回，请注意查收。", encoding="utf-8"
    )
    (folder / "refund" / "b.txt").write_bytes(
        "退款申请已经受理，我们会尽快为您处理，谢谢耐心等待。".encode("gbk")
    )
    (folder / "loose.txt").write_text(
        "Thanks for reaching out! Your order ships tomorrow morning.", encoding="utf-8"
    )
    (folder / "short.txt").write_text("ok", encoding="utf-8")
    ws = Workspace(tmp_path)
    catalog = open_catalog(ws.database_url)
    runs = run_pipeline(ws, catalog, until=ws.config.pipeline.stages[-1])
    assert [r.stage for r in runs] == ["collect", "clean", "annotate", "train"]
    dataset = open_dataset_version(ws, catalog, runs[2].outputs["dataset"])
    texts = {r.payload.decode("utf-8"): r.label for r in dataset.iter_records()}
    assert len(texts) == 3  # "ok" is shorter than [clean].min_text_chars
    assert any("退款申请" in text for text in texts)  # the GBK file was decoded
    assert {label for label in texts.values()} == {"refund", None}
    assert {s["license"] for s in dataset.manifest["sources"]} == {"proprietary"}

    model = load_model_version(ws, catalog, runs[-1].outputs["model_version"])
    assert model.family == "gpt" and model.config["tokenizer"] == "char"
    assert model.config["n_layer"] == 2  # the tiny preset
    (text,) = model.model.generate_text(["退款"], seed=0, max_tokens=10)
    assert isinstance(text, str)
