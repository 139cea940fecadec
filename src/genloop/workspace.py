"""A workspace: a folder with `genloop.toml` and the `.genloop/` state directory.

Layout of the state directory (every artifact carries its own config/manifest)::

    .genloop/
      genloop.db                     SQLite catalog (unless GENLOOP_DATABASE_URL is set)
      datasets/NAME/VERSION/         Parquet shards + manifest.json
      runs/RUN_ID/                   checkpoints/, samples/ (per-epoch grids), config.json
      models/NAME/VERSION/           model.safetensors + config.json
      content/ID.png                 generated content (content addressed)
      cache/                         derived artifacts (evaluation classifiers, ...)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from filelock import FileLock, Timeout

from genloop.config import CONFIG_FILENAME, GenloopConfig, load_config
from genloop.errors import WorkspaceError

STATE_DIRNAME = ".genloop"
DATABASE_URL_ENV = "GENLOOP_DATABASE_URL"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> Workspace:
        """The workspace containing `start` (default: the current directory)."""
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / CONFIG_FILENAME).is_file():
                return cls(folder)
        raise WorkspaceError(
            f"no {CONFIG_FILENAME} in {here} or any parent folder",
            hint="run `genloop init` here, or `cd` into a workspace (or pass --workspace)",
        )

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILENAME

    @cached_property
    def config(self) -> GenloopConfig:
        return load_config(self.config_path)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIRNAME

    @property
    def database_url(self) -> str:
        return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{self.state_dir / 'genloop.db'}"

    def path(self, *parts: str) -> Path:
        """A path inside the state directory, its parent created."""
        target = self.state_dir.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def resolve_user_path(self, value: str) -> Path:
        """A path from genloop.toml: relative to the workspace root."""
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else self.root / candidate

    def relative(self, path: Path) -> str:
        """How an artifact path is stored in the catalog: relative to the workspace, so a
        workspace can be moved or copied (absolute when it lies outside)."""
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def artifact(self, stored: str) -> Path:
        """The inverse of `relative`: a catalogued path as a path on this machine."""
        candidate = Path(stored)
        return candidate if candidate.is_absolute() else self.root / candidate

    @contextmanager
    def lock(self, name: str = "pipeline", timeout: float = 5.0) -> Iterator[None]:
        """Exclusive lock so two processes never run the same stage in one workspace."""
        lock = FileLock(str(self.path("locks", f"{name}.lock")))
        try:
            with lock.acquire(timeout=timeout):
                yield
        except Timeout:
            raise WorkspaceError(
                f"another genloop process holds the '{name}' lock in {self.root}",
                hint="wait for it to finish; if none is running, delete "
                f"{self.state_dir / 'locks' / (name + '.lock')}",
            ) from None
