"""Which catalog object an id given to `genloop lineage` names.

Accepted, tried in this order:

    digits@champion        a model alias → that model version
    <exact id>             a content item, model version or dataset version id
    digits                 a model name → its champion
    <prefix>               a unique prefix (4+ characters) of any of the three kinds

Ambiguous input is an error that lists the candidates, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from genloop.catalog.models import ContentItem, DatasetVersion, ModelAlias, ModelVersion
from genloop.errors import GenloopError, NotFoundError

CHAMPION = "champion"  # = genloop.models.versions.CHAMPION (not imported: that module pulls in torch)
MIN_PREFIX = 4
MAX_CANDIDATES = 8  # listed in an "ambiguous" error
KINDS: tuple[tuple[str, Any], ...] = (
    ("content", ContentItem),
    ("model_version", ModelVersion),
    ("dataset_version", DatasetVersion),
)
HINT = (
    "give a content id (printed by `genloop generate`), a model version (digits-v2, digits@champion) "
    "or a dataset version id (`genloop data ls`); a unique prefix of 4+ characters also works"
)


@dataclass(frozen=True)
class Subject:
    """What a lineage is about: `kind` is content | model_version | dataset_version."""

    kind: str
    id: str


def resolve_subject(session: Session, ref: str) -> Subject:
    """The one content item, model version or dataset version `ref` names (see the module docstring)."""
    ref = ref.strip()
    if not ref:
        raise GenloopError("an empty id names nothing", hint=HINT)
    if "@" in ref:
        return Subject("model_version", _alias(session, ref))
    exact = [Subject(kind, ref) for kind, table in KINDS if session.get(table, ref) is not None]
    if len(exact) == 1:
        return exact[0]
    if exact:
        raise _ambiguous(ref, exact)
    champion = session.get(ModelAlias, (ref, CHAMPION))
    if champion is not None:
        return Subject("model_version", champion.model_version_id)
    if len(ref) >= MIN_PREFIX:
        found: list[Subject] = []
        for kind, table in KINDS:
            ids = session.scalars(
                select(table.id)
                .where(table.id.startswith(ref, autoescape=True))
                .order_by(table.id)
                .limit(MAX_CANDIDATES + 1)
            ).all()
            found += [Subject(kind, i) for i in ids]
        if len(found) == 1:
            return found[0]
        if found:
            raise _ambiguous(ref, found)
    short = f" (prefixes need {MIN_PREFIX}+ characters)" if len(ref) < MIN_PREFIX else ""
    raise NotFoundError(
        f"no content item, model version or dataset version matches {ref!r}{short}", hint=HINT
    )


def _alias(session: Session, ref: str) -> str:
    name, _, alias = ref.partition("@")
    row = session.get(ModelAlias, (name, alias))
    if row is not None:
        return row.model_version_id
    known = session.scalars(select(ModelAlias.alias).where(ModelAlias.name == name)).all()
    raise NotFoundError(
        f"model {name!r} has no alias {alias!r}",
        hint=f"aliases of {name!r}: {', '.join(sorted(known))}"
        if known
        else "`genloop models ls` lists the model versions and their aliases",
    )


def _ambiguous(ref: str, candidates: list[Subject]) -> GenloopError:
    listed = [f"{c.kind} {c.id}" for c in candidates[:MAX_CANDIDATES]]
    more = " (and more)" if len(candidates) > MAX_CANDIDATES else ""
    return GenloopError(
        f"{ref!r} matches more than one id: {'; '.join(listed)}{more}",
        hint="give more characters of the id you mean",
    )
