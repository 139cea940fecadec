"""The conditional VAE at tiny sizes: shapes, the ELBO against torch.distributions, sampling, save/load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from genloop.errors import GenloopError, NotFoundError
from genloop.models.vae import ConditionalVAE, VAEConfig, spatial_sizes

CLASSES = ["cat", "dog", "fish"]


def tiny(**overrides: object) -> ConditionalVAE:
    torch.manual_seed(0)
    settings: dict = {"classes": CLASSES, "latent_dim": 4, "hidden_channels": 4, **overrides}
    return ConditionalVAE(**settings)


@pytest.mark.parametrize(("image_size", "channels"), [(28, 1), (32, 3), (64, 3), (27, 1), (8, 1)])
def test_forward_and_sample_keep_the_image_shape(image_size: int, channels: int) -> None:
    model = tiny(image_size=image_size, channels=channels)
    x = torch.rand(2, channels, image_size, image_size)  # (B, C, H, W)
    logits, mu, logvar = model(x, torch.tensor([0, 2]))
    assert logits.shape == x.shape
    assert mu.shape == logvar.shape == (2, 4)
    samples = model.sample(5, None, seed=1)
    assert samples.shape == (5, channels, image_size, image_size)
    assert samples.min() >= 0 and samples.max() <= 1


def test_spatial_sizes_halve_while_above_seven() -> None:
    assert spatial_sizes(28) == [28, 14, 7]
    assert spatial_sizes(32) == [32, 16, 8, 4]
    assert spatial_sizes(64) == [64, 32, 16, 8, 4]


def test_loss_is_the_negative_elbo_computed_by_torch_distributions() -> None:
    model = tiny()
    with torch.no_grad():
        model.prior_mean.normal_(0, 0.1)  # a non-trivial class prior p(z | y)
        model.prior_logvar.normal_(0, 0.05)
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2])
    logits, mu, logvar = model(x, y, generator=torch.Generator().manual_seed(3))
    prior_mu, prior_logvar = model.prior(y)
    # reference: E_q[log p(x|z,y)] (one sample) − KL(q(z|x,y) ‖ p(z|y))
    log_px = Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1)
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(prior_mu, (0.5 * prior_logvar).exp())).sum(1)
    elbo = model.elbo(x, y, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(elbo, log_px - kl, rtol=1e-5, atol=1e-3)
    beta_model = tiny(beta=0.5)
    beta_model.load_state_dict(model.state_dict())
    terms = beta_model.loss(x, y, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(terms["recon"], -log_px.mean(), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(terms["kl"], kl.mean(), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(terms["loss"], terms["recon"] + 0.5 * terms["kl"])


def test_sample_is_deterministic_for_a_seed_and_follows_the_condition() -> None:
    model = tiny()
    with torch.no_grad():
        model.output_bias[1].fill_(5.0)  # class 1 is bright everywhere
    condition = torch.tensor([0, 1, 2, 1])
    first = model.sample(4, condition, seed=7)
    assert torch.equal(first, model.sample(4, condition, seed=7))
    assert not torch.equal(first, model.sample(4, condition, seed=8))
    assert first[1].mean() > 0.9 and first[3].mean() > 0.9 and first[0].mean() < 0.9
    colder = model.sample(4, condition, seed=7, temperature=0.0)
    assert torch.equal(colder[1], colder[3])  # no noise left: same class, same image


@pytest.mark.parametrize(
    ("image_size", "channels", "hidden"), [(28, 1, 4), (28, 1, 32), (32, 3, 8), (27, 1, 4)]
)
def test_sampling_decodes_each_image_as_alone_in_nhwc(
    image_size: int, channels: int, hidden: int, one_torch_thread: None
) -> None:
    # sample() decodes row-exact and channels-last: the same images as decoding each alone
    torch.set_num_threads(1)  # one_torch_thread restores it; see generate/sampler.py on threads
    model = tiny(image_size=image_size, channels=channels, hidden_channels=hidden).eval()
    with torch.no_grad():
        z, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
        batched = model.decode(z, y, sampling=True)
        assert batched.is_contiguous()
        alone = torch.cat([model.decode(z[i : i + 1], y[i : i + 1], sampling=True) for i in range(6)])
        assert torch.equal(batched, alone)
        torch.testing.assert_close(batched, model.decode(z, y))  # the training path, up to the last bit


def test_sample_rejects_bad_conditions_and_parameters() -> None:
    model = tiny()
    with pytest.raises(GenloopError, match=r"class indices in 0\.\.2"):
        model.sample(2, torch.tensor([0, 3]), seed=0)
    with pytest.raises(GenloopError, match="class indices"):
        model.sample(3, torch.tensor([0, 1]), seed=0)
    with pytest.raises(GenloopError, match="unknown sampling parameter"):
        model.sample(1, None, seed=0, top_k=5)


def test_init_output_bias_starts_from_the_class_means() -> None:
    model = tiny(image_size=8)
    x = torch.zeros(4, 1, 8, 8)
    x[2:] = 1.0  # class 0 all black, class 1 all white, class 2 absent (→ the overall mean)
    model.init_output_bias(x, torch.tensor([0, 0, 1, 1]))
    black, white = torch.logit(torch.tensor(1e-3)), torch.logit(torch.tensor(1 - 1e-3))
    torch.testing.assert_close(model.output_bias[0], black.expand(1, 8, 8))
    torch.testing.assert_close(model.output_bias[1], white.expand(1, 8, 8))
    torch.testing.assert_close(model.output_bias[2], torch.zeros(1, 8, 8))


def test_save_then_load_gives_the_same_model(tmp_path: Path) -> None:
    model = tiny(image_size=32, channels=3, beta=2.0)
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config == {
        "family": "vae",
        "image_size": 32,
        "channels": 3,
        "classes": CLASSES,
        "latent_dim": 4,
        "hidden_channels": 4,
        "beta": 2.0,
    }
    loaded = ConditionalVAE.load(tmp_path / "m")
    assert torch.equal(loaded.sample(3, None, seed=5), model.sample(3, None, seed=5))


def test_load_of_an_incomplete_directory_says_what_is_missing(tmp_path: Path) -> None:
    tiny().save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(NotFoundError, match=r"model\.safetensors is missing"):
        ConditionalVAE.load(tmp_path / "m")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("image_size", 4, "image_size"), ("channels", 2, "channels"), ("classes", [], "classes is empty")],
)
def test_invalid_config_is_an_error_not_an_assert(field: str, value: object, message: str) -> None:
    settings: dict = {"classes": CLASSES, field: value}
    with pytest.raises(GenloopError, match=message):
        VAEConfig(**settings)


def test_load_refuses_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    tiny().save(tmp_path / "a")
    tiny(latent_dim=6).save(tmp_path / "b")
    (tmp_path / "b" / "model.safetensors").replace(tmp_path / "a" / "model.safetensors")
    with pytest.raises(GenloopError, match="does not fit"):
        ConditionalVAE.load(tmp_path / "a")


def test_gaussian_likelihood_trains_saves_and_loads(tmp_path: Path) -> None:
    """N(sigmoid(logits), σ_c²) per pixel: the NLL is the closed form, σ is learned, files round-trip."""
    torch.manual_seed(0)
    model = ConditionalVAE.build(
        VAEConfig(classes=["a", "b"], latent_dim=4, hidden_channels=4, likelihood="gaussian")
    )
    x = torch.rand(8, 1, 28, 28)
    logits = torch.randn(8, 1, 28, 28)
    sigma = 0.1
    expected = (
        (x - torch.sigmoid(logits)) ** 2 / (2 * sigma**2) + math.log(sigma) + 0.5 * math.log(2 * math.pi)
    )
    assert torch.allclose(model._reconstruction_nll(logits, x), expected.flatten(1).sum(1), rtol=1e-5)
    y = torch.tensor([0, 1] * 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(model.loss(x, y)["loss"].detach())
    for _ in range(20):
        optimizer.zero_grad()
        model.loss(x, y)["loss"].backward()
        optimizer.step()
    assert float(model.loss(x, y)["loss"].detach()) < first
    assert float(model.log_sigma.detach()) != math.log(0.1)  # σ is learned
    model.save(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["likelihood"] == "gaussian"
    loaded = ConditionalVAE.load(tmp_path)
    assert torch.equal(loaded.sample(4, None, seed=3), model.sample(4, None, seed=3))


def test_unknown_likelihood_is_a_clear_error() -> None:
    with pytest.raises(GenloopError, match="likelihood must be one of bernoulli, gaussian"):
        VAEConfig(classes=["a"], likelihood="poisson")
