"""The diffusion model at tiny sizes: config checks, learning on real digits, sampling, guidance,
text prompts, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genloop.errors import GenloopError, NotFoundError
from genloop.models.ddpm import DDPMConfig, DiffusionModel
from genloop.train.device import use_available_cpus
from support.mnist import mnist_pngs

CLASSES = ["0", "1", "2"]
TINY = {"block_channels": [8, 16], "attention_levels": [], "train_timesteps": 100, "sample_steps": 8}


@pytest.fixture(autouse=True)
def threads(one_training_thread: None) -> None:
    """Honour GENLOOP_NUM_THREADS=1 (conftest) as training does: on shared CPUs 2 threads are 40× slower."""
    use_available_cpus()


def tiny(**overrides: object) -> DiffusionModel:
    torch.manual_seed(0)
    settings: dict = {"classes": CLASSES, **TINY, **overrides}
    return DiffusionModel(**settings)


def digits(per_class: int, classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Real MNIST digits of `classes` → (x (N, 1, 28, 28) in [0, 1], y (N,) indices into classes)."""
    import io

    import numpy as np
    from PIL import Image

    pairs = [(png, label) for png, label in mnist_pngs(per_class) if label in classes]
    x = torch.stack(
        [torch.from_numpy(np.asarray(Image.open(io.BytesIO(png)), dtype=np.float32)) for png, _ in pairs]
    )
    y = torch.tensor([classes.index(label) for _, label in pairs])
    return x.unsqueeze(1) / 255.0, y


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"image_size": 28, "fit": "exact", "block_channels": [8, 8, 8, 8]},
            r"not a multiple of 8.*pads to 32",
        ),
        ({"block_channels": [12, 24]}, "norm_groups 8 must divide"),
        ({"attention_levels": [2]}, r"attention_levels \[2\] must be in 0\.\.1"),
        ({"classes": []}, r"classes is empty \(class conditioning"),
        ({"conditioning": "image"}, "conditioning must be one of none, class, text"),
        ({"p_uncond": 1.0}, r"p_uncond must be in \[0, 1\)"),
        ({"text_encoder": "clip"}, "text_encoder must be one of minilm, e5"),
        ({"image_size": 8, "block_channels": [8, 8, 8, 8, 8]}, "too small for 5 levels"),
        ({"sample_steps": 500}, r"sample_steps must be in 1\.\.train_timesteps"),
    ],
)
def test_bad_configs_are_errors_that_say_what_to_fix(settings: dict, message: str) -> None:
    with pytest.raises(GenloopError, match=message) as error:
        DDPMConfig(**{"classes": CLASSES, **TINY, **settings})
    assert error.value.hint


@pytest.mark.parametrize(
    ("image_size", "channels", "block_channels", "fit", "unet_size"),
    [
        (28, 1, [8, 16, 16], "pad", 28),
        (28, 1, [8, 8, 16, 16], "pad", 32),
        (20, 3, [8, 16, 16], "resize", 20),
        (30, 3, [8, 16, 16], "resize", 32),
    ],
)
def test_samples_have_the_image_shape_whatever_the_unet_size(
    image_size: int, channels: int, block_channels: list[int], fit: str, unet_size: int
) -> None:
    model = tiny(image_size=image_size, channels=channels, block_channels=block_channels, fit=fit)
    assert model.config.unet_size == unet_size
    x = torch.rand(2, channels, image_size, image_size)
    assert model.to_unet_space(x).shape == (2, channels, unet_size, unet_size)
    if fit == "pad":  # padding is undone exactly
        torch.testing.assert_close(model.from_unet_space(model.to_unet_space(x)), x)
    loss = model.loss(x, torch.tensor([0, 2]), generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    samples = model.sample(3, None, seed=1, steps=3)
    assert samples.shape == (3, channels, image_size, image_size)
    assert samples.min() >= 0 and samples.max() <= 1


def test_a_few_steps_on_real_digits_lower_the_loss() -> None:
    model = tiny()
    x, y = digits(30, CLASSES)  # (90, 1, 28, 28)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def held_loss() -> float:  # the same noise and timesteps each time
        with torch.no_grad():
            return float(model.loss(x, y, generator=torch.Generator().manual_seed(123)))

    before = held_loss()
    for step in range(20):
        rows = torch.randperm(len(x), generator=torch.Generator().manual_seed(step))[:32]
        loss = model.loss(x[rows], y[rows], generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = held_loss()
    assert after < 0.5 * before, (before, after)  # measured: 1.26 → 0.25


def test_sampling_is_deterministic_for_a_seed_with_ddim_and_ddpm() -> None:
    model = tiny()
    condition = torch.tensor([0, 1, 2, 1])
    first = model.sample(4, condition, seed=7)
    assert torch.equal(first, model.sample(4, condition, seed=7))
    assert not torch.equal(first, model.sample(4, condition, seed=8))
    few = model.sample(4, condition, seed=7, steps=3)  # DDIM with fewer steps: another, valid result
    assert few.shape == first.shape and not torch.equal(few, first)
    ancestral = model.sample(2, torch.tensor([0]), seed=7, scheduler="ddpm", steps=20)
    assert torch.equal(ancestral, model.sample(2, torch.tensor([0]), seed=7, scheduler="ddpm", steps=20))
    assert ancestral.shape == (2, 1, 28, 28)


def test_guidance_uses_the_condition_and_zero_guidance_ignores_it() -> None:
    model = tiny()
    with torch.no_grad():
        model.unet.class_embedding.weight.normal_(0, 3.0)  # classes that make a visible difference
    zero, one = torch.tensor([0, 0]), torch.tensor([1, 1])
    assert not torch.allclose(model.sample(2, zero, seed=1), model.sample(2, one, seed=1))
    unconditional = [model.sample(2, c, seed=1, guidance_scale=0.0) for c in (zero, one)]
    torch.testing.assert_close(unconditional[0], unconditional[1])  # w = 0: ε(∅) only


def test_sample_rejects_bad_conditions_and_parameters() -> None:
    model = tiny()
    with pytest.raises(GenloopError, match=r"class indices in 0\.\.2"):
        model.sample(2, torch.tensor([0, 3]), seed=0)
    with pytest.raises(GenloopError, match="unknown sampling parameter"):
        model.sample(1, None, seed=0, temperature=0.5)
    with pytest.raises(GenloopError, match="scheduler must be 'ddim' or 'ddpm'"):
        model.sample(1, None, seed=0, scheduler="euler")
    with pytest.raises(GenloopError, match=r"steps must be in 1\.\.100"):
        model.sample(1, None, seed=0, steps=1000)


def test_a_prompt_changes_what_a_text_model_draws() -> None:
    model = tiny(classes=["Sneaker", "Bag"], conditioning="text", text_encoder="minilm")
    with torch.no_grad():  # a projection strong enough that the prompt shows in a few DDIM steps
        model.text_projection[0].weight.normal_(0, 1.0)
    shoe = model.sample(2, "a running shoe", seed=3)
    assert torch.equal(shoe, model.sample(2, ["a running shoe", "a running shoe"], seed=3))
    assert (shoe - model.sample(2, "a handbag", seed=3)).abs().max() > 0.05
    # a class index means its caption: index 0 is "a sneaker"
    assert torch.equal(model.sample(2, torch.tensor([0, 0]), seed=3), model.sample(2, "a sneaker", seed=3))
    with pytest.raises(GenloopError, match="1 or 3 prompts"):
        model.sample(3, ["a", "b"], seed=0)


def test_save_then_load_gives_identical_samples(tmp_path: Path) -> None:
    model = tiny(image_size=28, block_channels=[8, 8, 16, 16], attention_levels=[3], p_uncond=0.2)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)  # not just the initialisation
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["family"] == "ddpm" and config["classes"] == CLASSES and config["p_uncond"] == 0.2
    assert config["caption_languages"] == ["en"]
    loaded = DiffusionModel.load(tmp_path / "m")
    condition = torch.tensor([2, 0, 1])
    assert torch.equal(loaded.sample(3, condition, seed=5), model.sample(3, condition, seed=5))
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(NotFoundError, match=r"model\.safetensors is missing"):
        DiffusionModel.load(tmp_path / "m")


def test_load_refuses_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    tiny().save(tmp_path / "a")
    tiny(block_channels=[8, 24]).save(tmp_path / "b")
    (tmp_path / "b" / "model.safetensors").replace(tmp_path / "a" / "model.safetensors")
    with pytest.raises(GenloopError, match="does not fit"):
        DiffusionModel.load(tmp_path / "a")


@pytest.mark.parametrize(
    "params", [{"steps": 10}, {"scheduler": "ddpm", "steps": 100}, {"scheduler": "ddpm"}]
)
def test_with_the_ideal_denoiser_every_sampler_returns_the_one_training_image(params: dict) -> None:
    """For data that is one image x*, the optimal ε_θ(x_t, t) = (x_t − √ᾱ_t x*) / √(1 − ᾱ_t); with it
    in place of the UNet, DDIM and DDPM (padding, guidance and all) must land exactly on x*."""
    model = tiny(block_channels=[8, 8, 8, 8]).eval()  # 28 padded to 32 and cropped back
    target = torch.rand(1, 1, 28, 28)
    x0, alphas_cumprod = model.to_unet_space(target), model.noise_scheduler.alphas_cumprod

    def ideal(noisy: torch.Tensor, t: torch.Tensor, *_: object) -> torch.Tensor:
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        return (noisy - a.sqrt() * x0) / (1 - a).sqrt()

    model.predict_noise = ideal  # type: ignore[method-assign]
    samples = model.sample(2, torch.tensor([0, 1]), seed=0, guidance_scale=2.0, **params)
    torch.testing.assert_close(samples, target.expand(2, -1, -1, -1), atol=1e-5, rtol=0)
