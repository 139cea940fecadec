"""The text template: a user's text folder becomes a versioned, licensed dataset and a GPT."""

from __future__ import annotations

from pathlib import Path

import pytest

from genloop.catalog import open_catalog
from genloop.catalog.models import ContentItem
from genloop.data.datasets import open_dataset_version
from genloop.models.versions import load_model_version
from genloop.pipeline.runner import run_pipeline
from genloop.workspace import Workspace
from genloop.workspace_init import init_workspace

MORE_REPLIES = [
    "Your parcel left our warehouse in Leeds and should arrive by Friday afternoon.",
    "We are sorry the blender arrived cracked; a replacement is on its way today.",
    "Please reply with the serial number printed under the battery cover, thank you.",
    "感谢您的反馈，我们已经将问题转交给技术部门，稍后会有专人联系您。",
    "您购买的空气净化器支持七天无理由退货，请保留好原包装和发票。",
    "Our store in Bristol opens at nine on weekdays and at ten on Sundays.",
    "The discount code expired last month, but here is a new one for ten percent off.",
    "您的会员积分已经到账，可以在个人中心的积分商城兑换礼品。",
    "If the printer still shows error 41, unplug it for a full minute and try again.",
    "很抱歉给您带来不便，快递延误是因为暴雨天气，预计后天送达。",
    "Gift wrapping is free for orders above forty pounds; just tick the box at checkout.",
    "配送地址修改成功，新的地址会在下一次发货时生效。",
]


def test_text_template_runs_its_declared_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENLOOP_DATABASE_URL", raising=False)
    init_workspace(tmp_path, "text", name="replies")
    config = tmp_path / "genloop.toml"  # the template's "cpu" preset trains for minutes; a test has seconds
    text = config.read_text().replace('preset = "cpu"', 'preset = "tiny"')
    text = text.replace("text_samples = 200 ", "text_samples = 6 ").replace(
        "max_new_tokens = 200", "max_new_tokens = 24"
    )
    config.write_text(text, encoding="utf-8")
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
    for i, line in enumerate(MORE_REPLIES):  # enough text that the 10 % test split is not empty
        (folder / f"reply-{i:02d}.txt").write_text(line, encoding="utf-8")
    ws = Workspace(tmp_path)
    catalog = open_catalog(ws.database_url)
    runs = run_pipeline(ws, catalog, until=ws.config.pipeline.stages[-1])
    assert [r.stage for r in runs] == ["collect", "clean", "annotate", "train", "evaluate", "generate"]
    dataset = open_dataset_version(ws, catalog, runs[2].outputs["dataset"])
    texts = {r.payload.decode("utf-8"): r.label for r in dataset.iter_records()}
    assert len(texts) == 3 + len(MORE_REPLIES)  # "ok" is shorter than [clean].min_text_chars
    assert any("退款申请" in text for text in texts)  # the GBK file was decoded
    assert {label for label in texts.values()} == {"refund", None}
    assert {s["license"] for s in dataset.manifest["sources"]} == {"proprietary"}

    # Evaluate: held-out loss and bits/char on the test split, sample metrics on 6 generated texts.
    metrics = runs[4].outputs["metrics"]
    assert metrics["modality"] == "text" and metrics["text_samples"] == 6
    assert metrics["bits_per_character"] > 0 and metrics["heldout_characters"] > 0
    assert 0.0 <= metrics["distinct_2"] <= 1.0
    assert metrics["verbatim_ngram"] == 8 and 0.0 <= metrics["verbatim_8gram_share"] <= 1.0

    # Generate: 16 labelled texts, each through the text safety checks, with a signed label.
    content = runs[5].outputs["content"]
    assert len(content) == 16
    with catalog.session() as session:
        items = [session.get(ContentItem, item_id) for item_id in content]
    assert all(item is not None and item.modality == "text" for item in items)
    first = items[0]
    assert first is not None and {v["check"] for v in first.verdicts} == {"blocklist", "pii", "verbatim"}
    body = ws.artifact(first.path).read_text(encoding="utf-8")
    assert "AI生成" in body and "AIGC" in body  # the visible line and the GB 45438 front matter

    model = load_model_version(ws, catalog, runs[3].outputs["model_version"])
    assert model.family == "gpt" and model.config["tokenizer"] == "char"
    assert model.config["n_layer"] == 2  # the tiny preset
    (text,) = model.model.generate_text(["退款"], seed=0, max_tokens=10)
    assert isinstance(text, str)
