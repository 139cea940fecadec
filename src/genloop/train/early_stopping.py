"""Stop training when the validation loss has stopped improving."""

from __future__ import annotations

import math
from typing import Any


class EarlyStopping:
    """`observe(loss)` after each evaluation; `should_stop` once `patience` evaluations in a row
    failed to beat the best loss by more than `min_delta`. Checkpointed with the run."""

    def __init__(self, patience: int | None, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.bad_evaluations = 0

    def observe(self, loss: float) -> bool:
        """Record one validation loss; True when it is the best so far."""
        if loss < self.best - self.min_delta:
            self.best, self.bad_evaluations = loss, 0
            return True
        self.bad_evaluations += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_evaluations >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_evaluations": self.bad_evaluations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_evaluations = float(state["best"]), int(state["bad_evaluations"])
