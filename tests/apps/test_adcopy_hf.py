"""The ad-copy studio's second generator family: a pretrained Hugging Face causal LM with a LoRA
adapter (`genloop adcopy train --family hf-causal-lm`). The base is a tiny real Llama written to a
folder (tests/support/tiny_causal_lm.py) and named with --base-model, so the whole path — LoRA on
English past copy, batched sampling, repair, ranking, storing — runs in seconds; SmolLM2-135M, the
default base, takes the same path (measured in benchmarks/adcopy_quality.py --family hf-causal-lm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from apps.test_adcopy_cli import PRODUCTS, write_csv
from conftest import make_workspace
from genloop.apps.adcopy.constraints import violations
from genloop.apps.adcopy.generator import CopyModel
from genloop.apps.adcopy.products import read_products
from genloop.apps.adcopy.standin import PAST_COPY
from genloop.catalog import open_catalog
from genloop.catalog.session import close_all
from genloop.cli.main import app
from genloop.errors import GenloopError
from support.tiny_causal_lm import tiny_causal_lm


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["adcopy", *args], terminal_width=200)


@pytest.fixture(scope="module")
def adapted(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`adcopy-v1`: a LoRA adapter on a tiny Llama, 8 steps on 60 real English past lines."""
    root = tmp_path_factory.mktemp("adcopy-hf")
    base = tiny_causal_lm(root / "base", architecture="llama")
    workspace = make_workspace(root / "ws", '[project]\nname = "ads"\n')
    stand_in = [json.loads(line) for line in PAST_COPY.read_text(encoding="utf-8").splitlines()]
    english = [r for r in stand_in if r["language"] == "en"][:60]
    chinese = [r for r in stand_in if r["language"] == "zh"][:20]
    copy = write_csv(
        root / "past.csv",
        [{k: r[k] for k in ("text", "category", "tone", "language")} for r in english + chinese],
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("GENLOOP_DATABASE_URL", raising=False)
        result = invoke(
            "train",
            "--copy",
            str(copy),
            "--family",
            "hf-causal-lm",
            "--base-model",
            str(base),
            "--preset",
            "tiny",
            "--max-steps",
            "8",
            "-w",
            str(workspace.root),
        )
        assert result.exit_code == 0, result.output
        # the adapter learns English only: the Chinese rows are left out, and said so by the count
        assert "adcopy-v1 (hf-causal-lm) trained on 60 lines (60 en)" in result.output
        yield workspace, root
    close_all()


def test_lora_generator_writes_english_lines_that_meet_their_constraints(adapted: Any) -> None:
    workspace, root = adapted
    english = [p for p in PRODUCTS if p["language"] == "en"]
    products_file = write_csv(root / "products.csv", english)
    result = invoke("generate", str(products_file), "-n", "3", "--json", "-w", str(workspace.root))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    products = {p.id: p for p in read_products(products_file)}
    assert {entry["product"]["id"] for entry in report} == set(products)
    lines = 0
    for entry in report:
        product = products[entry["product"]["id"]]
        assert entry["model_version"] == "adcopy-v1" and entry["sampled"] >= 9
        for line in entry["lines"]:
            assert violations(line["text"], product) == [], (product.id, line)
            assert line["raw"]  # what the adapter wrote before repair
        lines += len(entry["lines"])
    assert lines >= 3


def test_lora_samples_depend_on_their_own_seed_only(adapted: Any) -> None:
    workspace, _ = adapted
    model = CopyModel.load(workspace, open_catalog(workspace.database_url), "adcopy")
    assert model.family == "hf-causal-lm"
    params = {"temperature": 0.9, "top_p": 0.95, "max_new_tokens": 12, "stop": ["\n"]}
    prompt = "⟦en|shoes|bold||light⟧"
    together = model.sample(prompt, [11, 12, 13], params)
    alone = [model.sample(prompt, [seed], params)[0] for seed in (13, 11)]
    assert [together[2], together[0]] == alone
    assert model.sample(prompt, [11, 12, 13], params) == together  # same seeds, same lines


def test_base_model_errors_are_clear_and_train_nothing(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "ws", '[project]\nname = "ads"\n')
    wrong_family = invoke(
        "train", "--base-model", str(tmp_path), "--preset", "tiny", "-w", str(workspace.root)
    )
    assert isinstance(wrong_family.exception, GenloopError)
    assert "--base-model is for the hf-causal-lm family" in str(wrong_family.exception)
    missing = invoke(
        "train",
        "--family",
        "hf-causal-lm",
        "--base-model",
        str(tmp_path / "nowhere"),
        "--preset",
        "tiny",
        "-w",
        str(workspace.root),
    )
    assert isinstance(missing.exception, GenloopError) and "is not a folder" in str(missing.exception)
    assert not (workspace.state_dir / "apps" / "adcopy" / "manifest.json").exists()
