"""Model families by name: `@register_model("vae")`, plus the `genloop.models` entry points.

A family is an `nn.Module` class that provides, as a contract:

* `config_class`: its config dataclass; `build(config)` makes a fresh model from one;
* `sample(n, condition, *, seed, **params)`: `n` outputs, deterministic for a seed;
* `save(directory)` → `config.json` (with `"family"`) + `model.safetensors`, and the
  classmethod `load(directory)`.

Plugins register through the entry-point group `genloop.models`
(`vae = "genloop.models.vae:ConditionalVAE"`); the built-ins are declared the same
way in genloop's own pyproject.toml, so a plugin family is a first-class citizen.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch

from genloop.errors import GenloopError

ENTRY_POINT_GROUP = "genloop.models"

_families: dict[str, type] = {}
_broken: dict[str, str] = {}  # entry-point name → why it could not be loaded
_entry_points_loaded = False

FamilyT = TypeVar("FamilyT", bound=type)


class GenerativeModel(Protocol):
    """What generation needs of any family (the module itself is an `nn.Module`)."""

    def sample(self, n: int, condition: torch.Tensor | None, *, seed: int, **params: Any) -> torch.Tensor: ...

    def save(self, directory: Path) -> None: ...


def register_model(name: str) -> Callable[[FamilyT], FamilyT]:
    """Class decorator: make `cls` available as model family `name` (sets `cls.family`)."""

    def decorate(cls: FamilyT) -> FamilyT:
        existing = _families.get(name)
        if existing is not None and existing is not cls and _qualname(existing) != _qualname(cls):
            raise GenloopError(
                f"model family {name!r} is registered twice: {_qualname(existing)} and {_qualname(cls)}",
                hint="give one of the plugins another family name",
            )
        cls.family = name  # type: ignore[attr-defined]
        _families[name] = cls
        return cls

    return decorate


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _load_entry_points(only: str | None = None) -> None:
    """Import the `genloop.models` entry points (just `only`, when given); importing registers.

    Loading one family must not import every other one: a diffusion family pulls in
    diffusers, which costs seconds that a VAE run should not pay.
    """
    global _entry_points_loaded
    if _entry_points_loaded or (only is not None and (only in _families or only in _broken)):
        return
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if (only is not None and point.name != only) or point.name in _families or point.name in _broken:
            continue
        try:
            loaded = point.load()
        except Exception as exc:  # a broken plugin must not hide the working families
            _broken[point.name] = f"{exc.__class__.__name__}: {exc}"
            continue
        if isinstance(loaded, type) and point.name not in _families:
            register_model(point.name)(loaded)
    if only is None:
        _entry_points_loaded = True


def available_families() -> list[str]:
    """Names of the model families that can be used, sorted."""
    _load_entry_points()
    return sorted(_families)


def get_model_family(name: str) -> type:
    """The model class registered as `name`; a GenloopError listing the families otherwise."""
    _load_entry_points(only=name)
    family = _families.get(name)
    if family is not None:
        return family
    available = ", ".join(available_families()) or "(none)"
    if name in _broken:
        raise GenloopError(
            f"model family {name!r} could not be loaded: {_broken[name]}",
            hint=f"reinstall the plugin that provides it; available: {available}",
        )
    raise GenloopError(
        f"model family {name!r} is not available; available: {available}",
        hint="set [train].family in genloop.toml to one of these, or install the plugin that provides it",
    )
