"""Errors a user can act on: each says what was wrong, where, and what to do.

The CLI prints these without a traceback (exit code 2); anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class GenloopError(Exception):
    """Base of every error genloop raises for bad input or a bad state.

    ``hint`` is the action the user should take ("run `genloop init` first").
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(GenloopError):
    """genloop.toml is missing, unparsable or invalid (names the file and field)."""


class WorkspaceError(GenloopError):
    """No workspace here, or its state is inconsistent."""


class DataError(GenloopError):
    """Input data could not be used at all (nothing usable, unknown source, ...)."""


class NotFoundError(GenloopError):
    """A dataset version, model version, content item ... does not exist."""


class MissingDependencyError(GenloopError):
    """An optional dependency is not installed; the hint gives the install line."""
