"""Hyperparameter search: `genloop tune` runs an Optuna study over [tune.space] (see `study`)."""

from genloop.tune.config import TuneConfig, read_tune_config, workspace_config
from genloop.tune.study import StudyOutcome, run_study

__all__ = ["StudyOutcome", "TuneConfig", "read_tune_config", "run_study", "workspace_config"]
