"""One registry shape for the per-modality steps configured by name (post-processors, checks).

    registry = StepRegistry[Processor]("post-processor", builtin_modules=(...), where="postprocess")
    @registry.register("resize")
    def resize(*, size: int) -> Processor: ...
    registry.build({"name": "resize", "size": 256}, "image")   # → Resize(size=256)

A factory takes the step's config parameters as keywords and returns an object with
`name` and `modalities`; a TypeError or ValueError from it becomes a GenloopError that
names the step, and a step given a modality it does not take is refused.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from genloop.errors import GenloopError


class Step(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def modalities(self) -> frozenset[str]: ...


StepT = TypeVar("StepT", bound=Step)
StepSpec = str | Mapping[str, Any]


class StepRegistry(Generic[StepT]):
    def __init__(self, kind: str, *, builtin_modules: Sequence[str], where: str) -> None:
        self.kind = kind
        """What a step is called in messages ("post-processor", "safety check")."""
        self.where = where
        """The genloop.toml key that lists these steps (for hints)."""
        self._builtin_modules = tuple(builtin_modules)
        self._factories: dict[str, Callable[..., StepT]] = {}

    def register(self, name: str) -> Callable[[Callable[..., StepT]], Callable[..., StepT]]:
        def decorate(factory: Callable[..., StepT]) -> Callable[..., StepT]:
            self._factories[name] = factory
            return factory

        return decorate

    def _load_builtins(self) -> None:
        for module in self._builtin_modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:  # a real missing dependency, not an absent built-in module
                    raise

    def available(self) -> list[str]:
        self._load_builtins()
        return sorted(self._factories)

    def build(self, spec: StepSpec, modality: str) -> StepT:
        """One step from `"name"` or `{name = ..., **params}`; clear errors for typos."""
        self._load_builtins()
        params = {"name": spec} if isinstance(spec, str) else dict(spec)
        name = str(params.pop("name"))
        if name not in self._factories:
            raise GenloopError(
                f"unknown {self.kind} {name!r}", hint=f"available: {', '.join(self.available())}"
            )
        try:
            step = self._factories[name](**params)
        except TypeError as exc:
            raise GenloopError(f"{self.kind} {name!r}: bad parameters {params!r}: {exc}") from None
        except ValueError as exc:
            raise GenloopError(f"{self.kind} {name!r}: {exc}") from None
        if modality not in step.modalities:
            takes = ", ".join(sorted(step.modalities))
            raise GenloopError(
                f"{self.kind} {name!r} does not take {modality} (it takes {takes})",
                hint=f"move it to the list of a modality it takes in [channels.*].{self.where}",
            )
        return step
