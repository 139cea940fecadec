"""hf-causal-lm: a local pretrained causal LM + LoRA adapter, on tiny real Llama / GPT-2 folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from genloop.errors import GenloopError, NotFoundError
from genloop.models.hf_causal_lm import HFCausalLM, HFCausalLMConfig
from genloop.models.registry import get_model_family
from support.tiny_causal_lm import tiny_causal_lm, tiny_encoder


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_causal_lm(tmp_path_factory.mktemp("bases") / "llama", architecture="llama")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_causal_lm(tmp_path_factory.mktemp("bases") / "gpt2", architecture="gpt2")


def build(base: Path, **options: object) -> HFCausalLM:
    torch.manual_seed(0)
    return HFCausalLM.build(HFCausalLMConfig(base_model=str(base), **options))  # type: ignore[arg-type]


def train_adapter_a_little(model: HFCausalLM) -> None:
    """Make B ≠ 0, so the adapter changes the output (a fresh adapter is the identity)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.adapter_parameters().values():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def test_family_is_registered_and_default_targets_follow_the_architecture(
    llama_dir: Path, gpt2_dir: Path
) -> None:
    assert get_model_family("hf-causal-lm") is HFCausalLM
    llama, gpt2 = build(llama_dir), build(gpt2_dir)
    assert llama.config.target_modules == ["q_proj", "v_proj"]
    assert gpt2.config.target_modules == ["c_attn"]
    # the module's state is the adapter only: A and B per adapted layer, 2 layers
    assert len(llama.state_dict()) == 2 * 2 * 2 and len(gpt2.state_dict()) == 2 * 2
    assert all("lora_" in name for name in llama.state_dict())
    trainable = {n for n, p in llama.named_parameters() if p.requires_grad}
    assert {n.removeprefix("peft.") for n in trainable} == set(llama.state_dict())


def test_save_then_load_gives_the_same_text_and_stores_only_the_adapter(
    llama_dir: Path, tmp_path: Path
) -> None:
    model = build(llama_dir, lora_r=4, lora_dropout=0.0)
    ids = torch.tensor([model.encode_prompt("To be or not")])
    before = model(ids)
    train_adapter_a_little(model)
    assert not torch.allclose(model(ids), before, atol=1e-3)  # the adapter matters
    tuned = model.generate_text(["To be", "the king"], max_new_tokens=12, seed=3)

    model.save(tmp_path / "saved")

    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["family"] == "hf-causal-lm" and config["base_model"] == str(llama_dir.resolve())
    assert config["base_fingerprint"] and config["target_modules"] == ["q_proj", "v_proj"]
    adapter_bytes = (tmp_path / "saved" / "model.safetensors").stat().st_size
    base_bytes = (llama_dir / "model.safetensors").stat().st_size
    assert adapter_bytes < base_bytes / 5, (adapter_bytes, base_bytes)
    loaded = HFCausalLM.load(tmp_path / "saved")
    assert loaded.generate_text(["To be", "the king"], max_new_tokens=12, seed=3) == tuned
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_load_refuses_a_missing_or_changed_base(llama_dir: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(llama_dir, base)
    build(base).save(tmp_path / "saved")

    tiny_causal_lm(base, architecture="llama", seed=7)  # same files, other weights
    with pytest.raises(GenloopError, match="changed since this adapter was trained") as error:
        HFCausalLM.load(tmp_path / "saved")
    assert "restore the original base" in str(error.value.hint)

    shutil.rmtree(base)
    with pytest.raises(NotFoundError, match=r"the base model of .* is missing"):
        HFCausalLM.load(tmp_path / "saved")


def test_bad_configs_say_what_is_wrong(llama_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"base_model folder .*nowhere does not exist"):
        build(tmp_path / "nowhere")
    with pytest.raises(GenloopError, match="holds a BertModel model, not a causal language model"):
        build(tiny_encoder(tmp_path / "bert"))
    with pytest.raises(GenloopError, match=r"target_modules \['attention'\] match no layer") as error:
        build(llama_dir, target_modules=["q_proj", "attention"])
    assert "q_proj" in str(error.value.hint) and "down_proj" in str(error.value.hint)
    with pytest.raises(GenloopError, match=r"gguf_file 'model\.gguf' is not in"):
        build(llama_dir, gguf_file="model.gguf")
    with pytest.raises(GenloopError, match="lora_r must be ≥ 1"):
        HFCausalLMConfig(base_model=str(llama_dir), lora_r=0)
    with pytest.raises(GenloopError, match=r"unknown \[train.model\] option\(s\) \['n_layer'\]"):
        HFCausalLMConfig.from_options({"base_model": str(llama_dir), "n_layer": 2})


def test_generation_is_seeded_greedy_at_zero_temperature_and_honours_stop(gpt2_dir: Path) -> None:
    model = build(gpt2_dir)
    train_adapter_a_little(model)
    sampled = model.generate_text(["The", "The"], max_new_tokens=10, seed=5)
    assert sampled == model.generate_text(["The", "The"], max_new_tokens=10, seed=5)
    assert sampled[0] != sampled[1]  # prompt i draws with seed + i
    greedy = model.generate_text(["The"], max_new_tokens=10, temperature=0, seed=1)
    assert greedy == model.generate_text(["The"], max_new_tokens=10, temperature=0, seed=2)
    assert len(greedy[0]) > 1
    stop = greedy[0][1:3]
    cut = model.generate_text(["The"], max_new_tokens=10, temperature=0, stop=[stop], seed=1)[0]
    assert cut == greedy[0][: greedy[0].index(stop)]

    texts = model.sample(3, None, seed=0, max_new_tokens=4, top_k=5, top_p=0.9, repetition_penalty=1.2)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert model.sample(2, "To be", seed=0, max_new_tokens=4) == model.generate_text(
        ["To be", "To be"], max_new_tokens=4, seed=0
    )
    with pytest.raises(GenloopError, match=r"unknown sampling parameter\(s\) \['guidance'\]"):
        model.sample(1, None, seed=0, guidance=2.0)
    with pytest.raises(GenloopError, match="top_k must be ≥ 1"):
        model.generate_text(["x"], top_k=0)


def test_generation_leaves_the_global_random_state_alone(gpt2_dir: Path) -> None:
    """Samples written during training must not shift training's random draws (exact resume)."""
    model = build(gpt2_dir)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    model.generate_text(["a"], max_new_tokens=3, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_load_state_dict_rejects_weights_of_another_adapter(llama_dir: Path) -> None:
    small, large = build(llama_dir, lora_r=2), build(llama_dir, lora_r=4)
    with pytest.raises(RuntimeError, match="shape"):
        small.load_state_dict(large.state_dict())
    with pytest.raises(RuntimeError, match="missing"):
        small.load_state_dict({})
