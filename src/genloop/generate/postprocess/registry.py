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

from genloop.generate.artifact import Artifact
from genloop.generate.step_registry import StepRegistry

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
PROCESSORS: StepRegistry[Processor] = StepRegistry(
    "post-processor", builtin_modules=BUILTIN_MODULES, where="postprocess"
)
register_processor = PROCESSORS.register
available_processors = PROCESSORS.available
build_processor = PROCESSORS.build


def build_chain(specs: Sequence[str | Mapping[str, Any]], modality: str) -> list[Processor]:
    return [build_processor(spec, modality) for spec in specs]


def run_chain(chain: Sequence[Processor], artifact: Artifact) -> Artifact:
    for processor in chain:
        artifact = processor.apply(artifact)
    return artifact
