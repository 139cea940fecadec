"""Model versions in the catalog: register, alias, resolve a reference, load.

A version `NAME-vN` is a directory `.genloop/models/NAME/vN/` (weights + config.json,
loadable without the catalog) plus a catalog row linking it to its run and parent
version. Aliases (`champion`, `challenger`, ...) are movable names for one version.

References accepted wherever a model is named:

    digits-v2          that version
    digits@challenger  the version the alias points to
    digits             the model's champion

Every alias move is recorded in `model_alias_events` (who, when, from, to, forced, why):
`promote` checks the promotion gates first (`models/gates.py`), `rollback` moves an
alias back to the version it had before its last move, and `archive` retires a version
(hidden from `genloop models ls`, never promoted, still loadable for lineage).
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from torch import nn

from genloop.catalog import Catalog
from genloop.catalog.models import AliasEvent, ModelAlias, ModelVersion, utcnow
from genloop.config import GateConfig
from genloop.errors import GenloopError, NotFoundError
from genloop.models.gates import GateError, GateResult, check_gates, current_alias_target
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
    archived_at: datetime | None = None


@dataclass(frozen=True)
class AliasMove:
    """The outcome of `promote` / `rollback`: where the alias points now and where it pointed."""

    name: str
    alias: str
    version_id: str
    previous_id: str | None
    moved: bool
    """False when the alias already pointed at `version_id` (nothing recorded)."""
    forced: bool = False
    """True when failing gates were overridden with `force=True`."""
    gates: tuple[GateResult, ...] = ()


@dataclass(frozen=True)
class AliasHistoryEntry:
    id: int
    name: str
    alias: str
    from_version_id: str | None
    to_version_id: str
    action: str
    """promote | rollback | register | set | migrated (present before the history existed)."""
    actor: str
    forced: bool
    reason: str | None
    created_at: datetime
    gates: list[dict[str, Any]] = field(default_factory=list)


def current_actor() -> str:
    """Who is moving an alias: the OS user name (the history's `actor`)."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        return "unknown"


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
        set_alias(catalog, name, alias, version_id, action="register", reason=f"trained by run {run_id}")
    return version_id


def _next_version(catalog: Catalog, name: str) -> int:
    with catalog.session() as session:
        current = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name))
    return int(current or 0) + 1


def set_alias(
    catalog: Catalog,
    name: str,
    alias: str,
    version_id: str,
    *,
    action: str = "set",
    actor: str | None = None,
    reason: str | None = None,
) -> str | None:
    """Point `name@alias` at `version_id` (a version of the same model), without gates.

    Records the move in the alias history; returns the version it pointed at before.
    """
    _check_name(alias, "alias")
    with catalog.session() as session:
        return _move_alias(session, name, alias, version_id, action=action, actor=actor, reason=reason)


def _move_alias(
    session: Session,
    name: str,
    alias: str,
    version_id: str,
    *,
    action: str,
    actor: str | None,
    reason: str | None,
    forced: bool = False,
    gates: Sequence[GateResult] = (),
) -> str | None:
    version = session.get(ModelVersion, version_id)
    if version is None or version.name != name:
        raise NotFoundError(f"model {name!r} has no version {version_id!r}", hint=LIST_HINT)
    if version.archived_at is not None:
        raise GenloopError(
            f"{version_id} is archived and cannot be {name}@{alias}",
            hint=f"restore it first with `genloop models archive {version_id} --restore`",
        )
    # FOR UPDATE (PostgreSQL): two concurrent moves of one alias are serialised, so each
    # history row's `from` is the version the alias really had
    row = session.get(ModelAlias, (name, alias), with_for_update=True)
    previous = row.model_version_id if row else None
    if previous == version_id:
        return previous
    if row is None:
        session.add(ModelAlias(name=name, alias=alias, model_version_id=version_id))
    else:
        row.model_version_id = version_id
    session.add(
        AliasEvent(
            name=name,
            alias=alias,
            from_version_id=previous,
            to_version_id=version_id,
            action=action,
            actor=actor or current_actor(),
            forced=forced,
            reason=reason,
            gates=[g.as_json() for g in gates],
            created_at=utcnow(),
        )
    )
    return previous


def promote(
    catalog: Catalog,
    ref: str,
    *,
    alias: str = CHAMPION,
    gates: Sequence[GateConfig] = (),
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
) -> AliasMove:
    """Point `NAME@alias` at the version `ref` names, if it passes every gate guarding `alias`.

    Raises `GateError` (each failing rule with its numbers) unless `force`; a forced
    promotion is recorded with `forced=True` and the overridden rules in its reason.
    """
    _check_name(alias, "alias")
    version_id = resolve_model_version(catalog, ref)
    with catalog.session() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise NotFoundError(f"model version {version_id!r} is not in the catalog", hint=LIST_HINT)
        name, archived = version.name, version.archived_at is not None
        current = session.get(ModelAlias, (name, alias))
        previous = current.model_version_id if current else None
    if archived:
        raise GenloopError(
            f"{version_id} is archived and cannot be promoted",
            hint=f"restore it first with `genloop models archive {version_id} --restore`",
        )
    if previous == version_id:
        return AliasMove(name, alias, version_id, previous, moved=False)
    champion = current_alias_target(catalog, name, CHAMPION)
    results = tuple(check_gates(catalog, version_id, gates, alias=alias, champion_id=champion))
    failing = [r for r in results if not r.passed]
    if failing and not force:
        raise GateError(version_id, alias, results)
    forced = bool(failing)
    if forced:
        overridden = "; ".join(r.message for r in failing)
        reason = f"{reason or 'no reason given'} (forced past: {overridden})"
    with catalog.session() as session:
        now = session.get(ModelAlias, (name, CHAMPION), with_for_update=True)
        if (now.model_version_id if now else None) != champion:  # gates compared with a stale champion
            raise GenloopError(
                f"{name}@{CHAMPION} moved while the gates were checked", hint="run the promotion again"
            )
        previous = _move_alias(
            session,
            name,
            alias,
            version_id,
            action="promote",
            actor=actor,
            reason=reason,
            forced=forced,
            gates=results,
        )
    return AliasMove(name, alias, version_id, previous, moved=True, forced=forced, gates=results)


def rollback(
    catalog: Catalog,
    name: str,
    *,
    alias: str = CHAMPION,
    reason: str | None = None,
    actor: str | None = None,
) -> AliasMove:
    """Move `name@alias` back to the version it had before its last move (no gates: it was there).

    Repeated rollbacks keep going back (v1 → v2 → v3, rollback: v2, rollback: v1): the history is
    read as a stack where a promotion pushes and a rollback pops.
    """
    with catalog.session() as session:
        row = session.get(ModelAlias, (name, alias), with_for_update=True)
        if row is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}", hint=LIST_HINT)
        current = row.model_version_id
        events = session.scalars(
            select(AliasEvent)
            .where(AliasEvent.name == name, AliasEvent.alias == alias)
            .order_by(AliasEvent.id)
        ).all()
        stack: list[str] = []
        for event in events:
            if event.action == "rollback" and stack:
                stack.pop()
            if not stack or stack[-1] != event.to_version_id:
                stack.append(event.to_version_id)
        if not stack or stack[-1] != current:
            stack.append(current)
        if len(stack) < 2:
            raise GenloopError(
                f"{name}@{alias} has no earlier version to roll back to (it is {current})",
                hint=f"`genloop models history {name}` shows its moves; "
                f"`genloop models promote VERSION --alias {alias}` points it elsewhere",
            )
        target = stack[-2]
        _move_alias(
            session,
            name,
            alias,
            target,
            action="rollback",
            actor=actor,
            reason=reason or f"rolled back from {current}",
        )
    return AliasMove(name, alias, target, current, moved=True)


def archive(catalog: Catalog, ref: str, *, restore: bool = False) -> str:
    """Archive the version `ref` names (or restore it); returns its id.

    An archived version is hidden from `genloop models ls`, cannot take an alias and stays
    loadable (content it generated keeps its lineage). Aliases must leave it first.
    """
    version_id = resolve_model_version(catalog, ref)
    with catalog.session() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise NotFoundError(f"model version {version_id!r} is not in the catalog", hint=LIST_HINT)
        if restore:
            version.archived_at = None
            return version_id
        pointing_here = select(ModelAlias.alias).where(ModelAlias.model_version_id == version_id)
        aliases = session.scalars(pointing_here.order_by(ModelAlias.alias)).all()
        if aliases:
            pointing = ", ".join(f"{version.name}@{a}" for a in aliases)
            raise GenloopError(
                f"{version_id} cannot be archived: {pointing} points at it",
                hint=f"move the alias first: `genloop models rollback {version.name} --alias {aliases[0]}` "
                f"or `genloop models promote OTHER-VERSION --alias {aliases[0]}`",
            )
        if version.archived_at is None:
            version.archived_at = utcnow()
    return version_id


def alias_history(catalog: Catalog, name: str, alias: str | None = None) -> list[AliasHistoryEntry]:
    """Every recorded move of `name`'s aliases (of `alias`, when given), oldest first."""
    with catalog.session() as session:
        query = select(AliasEvent).where(AliasEvent.name == name).order_by(AliasEvent.id)
        if alias is not None:
            query = query.where(AliasEvent.alias == alias)
        return [
            AliasHistoryEntry(
                id=e.id,
                name=e.name,
                alias=e.alias,
                from_version_id=e.from_version_id,
                to_version_id=e.to_version_id,
                action=e.action,
                actor=e.actor,
                forced=e.forced,
                reason=e.reason,
                created_at=e.created_at,
                gates=list(e.gates or []),
            )
            for e in session.scalars(query)
        ]


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


def list_model_versions(
    catalog: Catalog, name: str | None = None, *, include_archived: bool = True
) -> list[ModelVersionInfo]:
    """Every model version (of `name`, when given), newest first, with its aliases."""
    with catalog.session() as session:
        query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version.desc())
        if name is not None:
            query = query.where(ModelVersion.name == name)
        if not include_archived:
            query = query.where(ModelVersion.archived_at.is_(None))
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
                archived_at=row.archived_at,
            )
            for row in rows
        ]
