"""DCGAN at tiny sizes: shapes, the classic 28×28 layout, losses, sampling, save/load, config checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genloop.errors import GenloopError, NotFoundError
from genloop.models.gan import (
    DCGAN,
    GANConfig,
    discriminator_loss,
    generator_loss,
    spatial_sizes,
)
from genloop.models.registry import get_model_family

CLASSES = ["cat", "dog", "fish"]


def tiny(**overrides: object) -> DCGAN:
    torch.manual_seed(0)
    settings: dict = {"classes": CLASSES, "latent_dim": 4, "hidden_channels": 4, "conditioning": "projection"}
    return DCGAN(**{**settings, **overrides})


@pytest.mark.parametrize(("image_size", "channels"), [(28, 1), (32, 3), (27, 1), (8, 1), (9, 3)])
@pytest.mark.parametrize("conditioning", ["none", "concat", "projection"])
def test_generator_and_discriminator_keep_the_shapes(
    image_size: int, channels: int, conditioning: str
) -> None:
    classes = [] if conditioning == "none" else CLASSES
    model = tiny(image_size=image_size, channels=channels, conditioning=conditioning, classes=classes)
    y = torch.tensor([0, 2])
    fake = model(torch.randn(2, 4), y if conditioning != "none" else None)
    assert fake.shape == (2, channels, image_size, image_size)
    assert fake.min() >= -1 and fake.max() <= 1  # tanh
    assert model.discriminator(fake, y).shape == (2,)
    samples = model.sample(5, None, seed=1)
    assert samples.shape == (5, channels, image_size, image_size)
    assert samples.min() >= 0 and samples.max() <= 1


def test_28x28_is_the_classic_dcgan_layout() -> None:
    model = DCGAN(latent_dim=100, hidden_channels=64)
    assert spatial_sizes(28) == [28, 14, 7] and spatial_sizes(64) == [64, 32, 16, 8, 4]
    convs = [m for m in model.generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(100, 128, 7, 7), (128, 64, 4, 4), (64, 1, 4, 4)]
    convs = [m for m in model.discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(64, 1, 4, 4), (128, 64, 4, 4), (1, 128, 7, 7)]
    assert model.classes == ["any"]  # an unconditional model has one pseudo-class
    sizes = []
    for layer in model.generator.net:
        layer.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
    model(torch.randn(2, 100))
    assert sorted(set(sizes)) == [7, 14, 28]


def test_losses_are_bce_and_hinge() -> None:
    real, fake = torch.randn(16), torch.randn(16)
    bce = F.binary_cross_entropy_with_logits
    expected = bce(real, torch.ones(16)) + bce(fake, torch.zeros(16))
    torch.testing.assert_close(discriminator_loss(real, fake, "nonsaturating"), expected)
    torch.testing.assert_close(generator_loss(fake, "nonsaturating"), bce(fake, torch.ones(16)))
    hinge = torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean()
    torch.testing.assert_close(discriminator_loss(real, fake, "hinge"), hinge)
    torch.testing.assert_close(generator_loss(fake, "hinge"), -fake.mean())


def test_projection_and_concat_make_the_discriminator_depend_on_the_class() -> None:
    for conditioning in ("projection", "concat"):
        model = tiny(conditioning=conditioning).eval()
        with torch.no_grad():
            for module in model.discriminator.modules():  # make the class path large enough to see
                if isinstance(module, nn.Embedding):
                    module.weight.normal_(0, 1)
            x = torch.rand(1, 1, 28, 28).repeat(3, 1, 1, 1)
            logits = model.discriminator(x, torch.tensor([0, 1, 2]))
        assert len(set(logits.tolist())) == 3, conditioning


def test_sample_is_deterministic_for_a_seed_and_leaves_training_state_alone() -> None:
    model = tiny().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    condition = torch.tensor([0, 1, 2, 1])
    first = model.sample(4, condition, seed=7)
    assert torch.equal(first, model.sample(4, condition, seed=7))
    assert not torch.equal(first, model.sample(4, condition, seed=8))
    assert model.training and model.generator.training
    for name, tensor in model.state_dict().items():  # BatchNorm running statistics untouched
        assert torch.equal(tensor, before[name]), name
    still = model.sample(4, condition, seed=7, temperature=0.0)
    assert not torch.equal(still[0], still[1])  # no noise left: the class alone decides …
    assert torch.equal(still[1], still[3])  # … so the same class gives the same image


@pytest.mark.parametrize(("image_size", "channels", "hidden"), [(28, 1, 4), (28, 1, 32), (32, 3, 8)])
def test_sampling_on_nhwc_feature_maps_gives_the_same_bits(
    image_size: int, channels: int, hidden: int
) -> None:
    # sampling runs the generator channels-last for speed; a model's images must not change by it
    torch.set_num_threads(1)  # one_torch_thread restores it; see generate/sampler.py on threads
    model = tiny(image_size=image_size, channels=channels, hidden_channels=hidden).eval()
    with torch.no_grad():
        z, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
        nhwc = model.generator(z, y, channels_last=True)
        assert nhwc.is_contiguous()
        assert torch.equal(nhwc, model.generator(z, y))


def test_sample_rejects_bad_conditions_and_parameters() -> None:
    model = tiny()
    with pytest.raises(GenloopError, match=r"class indices in 0\.\.2"):
        model.sample(2, torch.tensor([0, 3]), seed=0)
    with pytest.raises(GenloopError, match="unknown sampling parameter"):
        model.sample(2, None, seed=0, guidance=3.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_size": 4}, "image_size must be an integer from 8 to 256"),
        ({"image_size": 1000}, "image_size must be an integer from 8 to 256"),
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"conditioning": "film"}, "conditioning must be one of none, concat, projection"),
        ({"loss": "wasserstein"}, "loss must be one of nonsaturating, hinge"),
        ({"spectral_norm": "yes"}, "spectral_norm must be true or false"),
        ({"classes": []}, "conditioning 'projection' needs class labels"),
        ({"conditioning": "none"}, "an unconditional model .* has no classes"),
        ({"classes": ["a", "a"]}, "classes has duplicates"),
        ({"latent_dim": 0}, "latent_dim must be an integer ≥ 1"),
    ],
)
def test_bad_configs_say_what_is_wrong(overrides: dict, message: str) -> None:
    settings = {"classes": CLASSES, "conditioning": "projection", **overrides}
    with pytest.raises(GenloopError, match=message) as error:
        GANConfig(**settings)
    assert error.value.hint


@pytest.mark.parametrize(("conditioning", "spectral_norm"), [("projection", True), ("none", False)])
def test_save_then_load_gives_identical_samples(
    tmp_path: Path, conditioning: str, spectral_norm: bool
) -> None:
    classes = CLASSES if conditioning != "none" else []
    model = tiny(conditioning=conditioning, classes=classes, spectral_norm=spectral_norm, loss="hinge")
    model.discriminator(torch.rand(4, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 2, 0]))  # moves SN's u, v
    with torch.no_grad():
        model.generator.net[1].running_mean.normal_()  # non-default BatchNorm statistics must survive
    model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["family"] == "gan" and saved["conditioning"] == conditioning and saved["loss"] == "hinge"
    loaded = get_model_family("gan").load(tmp_path / "m")
    assert isinstance(loaded, DCGAN) and loaded.config == model.config
    assert torch.equal(loaded.sample(6, None, seed=3), model.sample(6, None, seed=3))
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_load_explains_missing_or_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="is missing"):
        DCGAN.load(tmp_path)
    tiny().save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "family": "vae"}))
    with pytest.raises(GenloopError, match="not a gan model"):
        DCGAN.load(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "hidden_channels": 8}))
    with pytest.raises(GenloopError, match="does not fit"):
        DCGAN.load(tmp_path / "m")
