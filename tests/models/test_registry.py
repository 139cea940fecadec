"""Model families: built-ins come through the `genloop.models` entry points like any plugin."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from torch import nn

from genloop.errors import GenloopError
from genloop.models import registry
from genloop.models.registry import available_families, get_model_family, register_model
from genloop.models.vae import ConditionalVAE


def test_vae_is_declared_as_an_entry_point_and_resolves_to_the_class() -> None:
    declared = {point.name: point.value for point in entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert declared["vae"] == "genloop.models.vae:ConditionalVAE"
    assert "vae" in available_families()
    assert get_model_family("vae") is ConditionalVAE
    assert ConditionalVAE.family == "vae"  # type: ignore[attr-defined]


def test_unknown_family_names_the_available_ones() -> None:
    with pytest.raises(GenloopError) as error:
        get_model_family("stylegan")
    assert "model family 'stylegan' is not available; available: " in error.value.message
    assert "vae" in error.value.message.split("available: ")[1]
    assert error.value.hint and "[train].family" in error.value.hint


def test_register_model_adds_a_family_and_refuses_a_clashing_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_families", dict(registry._families))

    @register_model("tiny-test")
    class Tiny(nn.Module):
        pass

    assert get_model_family("tiny-test") is Tiny
    assert "tiny-test" in available_families()

    class Other(nn.Module):
        pass

    with pytest.raises(GenloopError, match="registered twice"):
        register_model("tiny-test")(Other)
