"""The post-processor registry: one-method contract, built from config specs.

    class Processor(Protocol):
        name: str
        modalities: frozenset[str]          # which artifacts it accepts
        def apply(self, artifact) -> Artifact

A processor is registered by a factory taking its config parameters as keywords::

    @register_processor("resize")
    def resize(*, size: int, resample: str = "lanczos") -> Processor: ...

and declared in genloop.toml per channel and modality::

    [channels.gallery]
    postprocess.image = [{name = "resize", size = 256}, {name = "format", format = "webp", quality = 90}]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from genloop.errors import GenloopError
from genloop.generate.artifact import Artifact

BUILTIN_MODULES = (
    "genloop.generate.postprocess.images",
    "genloop.generate.postprocess.text",
    "genloop.generate.postprocess.music",
)


class Processor(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def modalities(self) -> frozenset[str]: ...

    def apply(self, artifact: Artifact) -> Artifact: ...


ProcessorFactory = Callable[..., Processor]
_PROCESSORS: dict[str, ProcessorFactory] = {}


def register_processor(name: str) -> Callable[[ProcessorFactory], ProcessorFactory]:
    def decorate(factory: ProcessorFactory) -> ProcessorFactory:
        _PROCESSORS[name] = factory
        return factory

    return decorate


def _load_builtins() -> None:
    import importlib

    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency, not an absent built-in module
                raise


def available_processors() -> list[str]:
    _load_builtins()
    return sorted(_PROCESSORS)


def build_processor(spec: str | Mapping[str, Any], modality: str) -> Processor:
    """One processor from `"name"` or `{name = ..., **params}`; clear errors for typos."""
    _load_builtins()
    params = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = str(params.pop("name"))
    if name not in _PROCESSORS:
        raise GenloopError(
            f"unknown post-processor {name!r}",
            hint=f"available: {', '.join(available_processors())}",
        )
    try:
        processor = _PROCESSORS[name](**params)
    except TypeError as exc:
        raise GenloopError(f"post-processor {name!r}: bad parameters {params!r}: {exc}") from None
    except ValueError as exc:
        raise GenloopError(f"post-processor {name!r}: {exc}") from None
    if modality not in processor.modalities:
        takes = ", ".join(sorted(processor.modalities))
        raise GenloopError(
            f"post-processor {name!r} does not take {modality} (it takes {takes})",
            hint="move it to the chain of a modality it takes in [channels.*].postprocess",
        )
    return processor


def build_chain(specs: Sequence[str | Mapping[str, Any]], modality: str) -> list[Processor]:
    return [build_processor(spec, modality) for spec in specs]


def run_chain(chain: Sequence[Processor], artifact: Artifact) -> Artifact:
    for processor in chain:
        artifact = processor.apply(artifact)
    return artifact
