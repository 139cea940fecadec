"""The safety-check registry: one-method contract, built from config specs.

    class SafetyCheck(Protocol):
        name: str
        modalities: frozenset[str]
        def check(self, artifact, context) -> Verdict

A failing verdict never blocks generation: it sends the item to the review queue
(status "review"), so nothing that failed a check is published without a person.
Every verdict is stored with the item, passed or not, with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from genloop.catalog import Catalog
from genloop.errors import GenloopError
from genloop.generate.artifact import Artifact
from genloop.generate.step_registry import StepRegistry
from genloop.workspace import Workspace

BUILTIN_MODULES = (
    "genloop.generate.safety.text",
    "genloop.generate.safety.images",
    "genloop.generate.safety.music",
)

DEFAULT_CHECKS: dict[str, list[str]] = {"image": [], "text": [], "music": []}
"""The checks a channel runs when its policy names none; the built-in modules extend it."""


@dataclass(frozen=True)
class Verdict:
    check: str
    passed: bool
    reason: str
    """Why, in words a reviewer understands: "blocked word 'xxx' at char 12", "clean"."""
    score: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SafetyContext:
    """What a check may need beyond the artifact: the model's training data, caches."""

    workspace: Workspace
    catalog: Catalog | None
    """None where the text is not a model version's output (e.g. a support reply quoting the
    knowledge base): checks that read the artifact alone run, and those that need the model's
    training data (verbatim, near-duplicate) say they cannot."""
    model_version_id: str
    cache: dict[str, Any] = field(default_factory=dict)
    """Per-generation-job memo (e.g. an n-gram index of the training text, built once)."""

    def require_catalog(self) -> Catalog:
        if self.catalog is None:
            raise GenloopError(
                f"this safety check needs {self.model_version_id}'s training data, and no catalog was given",
                hint="run it where the model version is in the catalog (genloop generate)",
            )
        return self.catalog


class SafetyCheck(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def modalities(self) -> frozenset[str]: ...

    def check(self, artifact: Artifact, context: SafetyContext) -> Verdict: ...


CheckFactory = Callable[..., SafetyCheck]
CHECKS: StepRegistry[SafetyCheck] = StepRegistry(
    "safety check", builtin_modules=BUILTIN_MODULES, where="safety"
)
register_check = CHECKS.register
available_checks = CHECKS.available
build_check = CHECKS.build


def build_checks(specs: Sequence[str | Mapping[str, Any]] | None, modality: str) -> list[SafetyCheck]:
    """The configured checks, or the modality's defaults when `specs` is None."""
    CHECKS.available()  # loads the built-in modules, which extend DEFAULT_CHECKS
    chosen = DEFAULT_CHECKS.get(modality, []) if specs is None else specs
    return [build_check(spec, modality) for spec in chosen]


def run_checks(checks: Sequence[SafetyCheck], artifact: Artifact, context: SafetyContext) -> list[Verdict]:
    return [check.check(artifact, context) for check in checks]
