"""Model versions in the catalog: register, alias, resolve a reference, load.

A version `NAME-vN` is a directory `.genloop/models/NAME/vN/` (weights + config.json,
loadable without the catalog) plus a catalog row linking it to its run and parent
version. Aliases (`champion`, `challenger`, ...) are movable names for one version.

References accepted wherever a model is named:

    digits-v2          that version
    digits@challenger  the version the alias points to
    digits             the model's champion
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from torch import nn

from genloop.catalog import Catalog
from genloop.catalog.models import ModelAlias, ModelVersion
from genloop.errors import GenloopError, NotFoundError
from genloop.models.registry import get_model_family
from genloop.storage import atomic_directory
from genloop.workspace import Workspace

CHAMPION = "champion"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LIST_HINT = "`genloop models ls` lists the model versions and their aliases"


@dataclass(frozen=True)
class LoadedModel:
    version_id: str
    name: str
    family: str
    model: nn.Module  # in eval mode, on the CPU
    config: dict[str, Any]
    classes: list[str]
    path: Path


@dataclass(frozen=True)
class ModelVersionInfo:
    id: str
    name: str
    version: int
    family: str
    run_id: str
    parent_id: str | None
    path: str
    """As stored in the catalog: relative to the workspace (`Workspace.artifact` makes it a path)."""
    feedback_count: int
    created_at: datetime
    aliases: tuple[str, ...]


def _check_name(value: str, what: str) -> None:
    if not _NAME.match(value):
        raise GenloopError(
            f"invalid {what} {value!r}", hint="use letters, digits and `_ . -` (at most 64, no spaces)"
        )


def register_model_version(
    workspace: Workspace,
    catalog: Catalog,
    *,
    name: str,
    family: str,
    run_id: str,
    weights_dir: Path,
    parent_id: str | None = None,
    feedback_count: int = 0,
    alias: str | None = CHAMPION,
) -> str:
    """Copy `weights_dir` to `.genloop/models/NAME/vN/` (atomically) and add version `NAME-vN`."""
    _check_name(name, "model name")
    # the lock keeps two processes from numbering (and writing) the same vN directory
    with workspace.lock(f"model-{name}", timeout=60):
        version = _next_version(catalog, name)
        final = workspace.path("models", name, f"v{version}")
        with atomic_directory(final) as staging:
            shutil.copytree(weights_dir, staging, dirs_exist_ok=True)
        version_id = f"{name}-v{version}"
        with catalog.session() as session:
            session.add(
                ModelVersion(
                    id=version_id,
                    name=name,
                    version=version,
                    family=family,
                    run_id=run_id,
                    parent_id=parent_id,
                    path=workspace.relative(final),  # relative: the workspace can be moved
                    feedback_count=feedback_count,
                )
            )
    if alias:
        set_alias(catalog, name, alias, version_id)
    return version_id


def _next_version(catalog: Catalog, name: str) -> int:
    with catalog.session() as session:
        current = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name))
    return int(current or 0) + 1


def set_alias(catalog: Catalog, name: str, alias: str, version_id: str) -> None:
    """Point `name@alias` at `version_id` (a version of the same model)."""
    _check_name(alias, "alias")
    with catalog.session() as session:
        version = session.get(ModelVersion, version_id)
        if version is None or version.name != name:
            raise NotFoundError(f"model {name!r} has no version {version_id!r}", hint=LIST_HINT)
        row = session.get(ModelAlias, (name, alias))
        if row is None:
            session.add(ModelAlias(name=name, alias=alias, model_version_id=version_id))
        else:
            row.model_version_id = version_id


def resolve_model_version(catalog: Catalog, ref: str) -> str:
    """A version id for `ref`: "NAME-vN", "NAME@ALIAS", or "NAME" (its champion)."""
    with catalog.session() as session:
        if "@" in ref:
            name, _, alias = ref.partition("@")
            row = session.get(ModelAlias, (name, alias))
            if row is None:
                known = session.scalars(select(ModelAlias.alias).where(ModelAlias.name == name)).all()
                raise NotFoundError(
                    f"model {name!r} has no alias {alias!r}",
                    hint=f"aliases of {name!r}: {', '.join(sorted(known))}" if known else LIST_HINT,
                )
            return row.model_version_id
        if session.get(ModelVersion, ref) is not None:
            return ref
        champion = session.get(ModelAlias, (ref, CHAMPION))
        if champion is not None:
            return champion.model_version_id
        has_versions = session.scalar(select(func.count()).where(ModelVersion.name == ref))
    if has_versions:
        raise NotFoundError(
            f"model {ref!r} has no {CHAMPION} alias",
            hint=f"name a version ({ref}-v1) or an alias ({ref}@challenger); {LIST_HINT}",
        )
    raise NotFoundError(f"no model version or model named {ref!r}", hint=LIST_HINT)


def load_model_version(workspace: Workspace, catalog: Catalog, ref: str) -> LoadedModel:
    """Resolve `ref` and load that version's model with its family (eval mode, CPU)."""
    version_id = resolve_model_version(catalog, ref)
    with catalog.session() as session:
        row = session.get(ModelVersion, version_id)
        if row is None:  # deleted since it was resolved
            raise NotFoundError(f"model version {version_id!r} is not in the catalog", hint=LIST_HINT)
        name, family_name, path = row.name, row.family, workspace.artifact(row.path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise NotFoundError(
            f"model version {version_id}: {config_path} is missing",
            hint="the files under .genloop/models were moved or deleted; retrain with `genloop train`",
        )
    model = get_model_family(family_name).load(path)  # type: ignore[attr-defined]
    model.eval()
    config = json.loads(config_path.read_text(encoding="utf-8"))
    return LoadedModel(version_id, name, family_name, model, config, list(config.get("classes") or []), path)


def list_model_versions(catalog: Catalog, name: str | None = None) -> list[ModelVersionInfo]:
    """Every model version (of `name`, when given), newest first, with its aliases."""
    with catalog.session() as session:
        query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version.desc())
        if name is not None:
            query = query.where(ModelVersion.name == name)
        rows = session.scalars(query).all()
        aliases: dict[str, list[str]] = {}
        for alias in session.scalars(select(ModelAlias).order_by(ModelAlias.alias)):
            aliases.setdefault(alias.model_version_id, []).append(alias.alias)
        return [
            ModelVersionInfo(
                id=row.id,
                name=row.name,
                version=row.version,
                family=row.family,
                run_id=row.run_id,
                parent_id=row.parent_id,
                path=row.path,
                feedback_count=row.feedback_count,
                created_at=row.created_at,
                aliases=tuple(aliases.get(row.id, [])),
            )
            for row in rows
        ]
