"""Hyperparameter search: `genloop tune` runs an Optuna study over [tune.space].

`genloop.tune.config` validates the section (no Optuna needed); `genloop.tune.study` runs the
study and imports Optuna (`pip install 'genloop[tune]'`), so it is imported only when used.
"""

from genloop.tune.config import TuneConfig, read_tune_config, workspace_config

__all__ = ["TuneConfig", "read_tune_config", "workspace_config"]
