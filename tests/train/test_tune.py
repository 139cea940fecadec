"""`genloop tune`: an Optuna study whose trials are real tiny VAE runs; records, best config, resume,
pruning hook, and clear errors for a bad [tune] section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from sqlalchemy import select

from genloop.catalog import open_catalog
from genloop.catalog.models import ModelAlias, Run
from genloop.config import TrainConfig
from genloop.errors import ConfigError
from genloop.train import train_model
from genloop.train.session import on_epoch_end
from genloop.tune.config import parse_tune_config, read_tune_config
from genloop.tune.study import run_study
from genloop.workspace import Workspace
from support.mnist import MakeDigits

BASE = TrainConfig(
    epochs=2, batch_size=16, latent_dim=4, hidden_channels=4, grid_per_class=1, tensorboard=False
)
SPACE = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "hidden_channels": {"choices": [4, 6]}}


def tune_config(n_trials: int, **extra: Any) -> Any:
    return parse_tune_config({"n_trials": n_trials, "space": SPACE, **extra}, source="genloop.toml")


def test_a_study_records_its_trials_writes_the_best_config_and_resumes(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    workspace = sqlite_workspace
    dataset = make_digits(workspace, per_class=4)
    catalog = open_catalog(workspace.database_url)

    first = run_study(workspace, catalog, dataset, tune_config(2), BASE, model_name="digits")

    assert first.study == "digits-vae" and first.ran == 2 and len(first.trials) == 2
    records = [json.loads(p.read_text()) for p in sorted((first.directory / "trials").glob("*.json"))]
    assert [r["number"] for r in records] == [0, 1]
    with catalog.session() as session:
        for record in records:
            if record["state"] == "complete":
                run = session.get(Run, record["run_id"])
                assert run is not None and run.status == "completed"
                assert run.config["learning_rate"] == record["params"]["learning_rate"]
                assert record["value"] == record["metrics"]["heldout_loss"]
                assert sorted(record["intermediate"]) == ["0", "1"]  # one report per epoch
        assert session.scalars(select(ModelAlias)).all() == []  # no trial takes the champion alias
    best = tomllib.loads(first.best_file.read_text()) if first.best_file else {}
    assert best == {"train": first.best_params}
    assert TrainConfig.model_validate(best["train"])  # pastes into [train] as it is
    values = [r["value"] for r in records if r["state"] == "complete"]
    assert first.best_value == min(values)

    # resume: 3 trials in all → exactly one more, the first two kept as they were
    again = run_study(workspace, catalog, dataset, tune_config(3), BASE, model_name="digits")
    assert again.ran == 1 and [t.number for t in again.trials] == [0, 1, 2]
    assert [t.params for t in again.trials[:2]] == [t.params for t in first.trials]
    assert again.trials[2].params != again.trials[0].params  # the sampler did not restart

    # a trial left running by a killed invocation is retried with the same values
    storage = JournalStorage(JournalFileBackend(str(first.directory / "journal.log")))
    study = optuna.load_study(study_name="digits-vae", storage=storage)
    stale = study.ask()
    stale_params = {"learning_rate": stale.suggest_float("learning_rate", 1e-4, 1e-2, log=True)}
    stale_params["hidden_channels"] = stale.suggest_categorical("hidden_channels", [4, 6])
    resumed = run_study(workspace, catalog, dataset, tune_config(4), BASE, model_name="digits")
    states = [t.state.name for t in resumed.trials]
    assert states[3] == "FAIL" and resumed.trials[4].params == stale_params and resumed.ran == 1


def test_the_epoch_end_hook_sees_each_epoch_and_can_stop_the_run(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=4)
    catalog = open_catalog(sqlite_workspace.database_url)
    seen: list[tuple[int, float]] = []

    def watch(epoch: int, metrics: Mapping[str, float]) -> None:
        seen.append((epoch, metrics["heldout_loss"]))

    with on_epoch_end(watch):
        result = train_model(sqlite_workspace, catalog, dataset, BASE, model_name="a", alias=None)
    assert [epoch for epoch, _ in seen] == [0, 1]
    assert seen[-1][1] == result.metrics["heldout_loss"]

    class Stop(Exception):
        pass

    def stop(epoch: int, metrics: Mapping[str, float]) -> None:
        raise Stop

    with on_epoch_end(stop), pytest.raises(Stop):
        train_model(sqlite_workspace, catalog, dataset, BASE, model_name="b", alias=None)
    with catalog.session() as session:
        statuses = {r.model_name: (r.status, r.epochs_done) for r in session.scalars(select(Run))}
    assert statuses == {"a": ("completed", 2), "b": ("failed", 0)}
    seen.clear()
    train_model(sqlite_workspace, catalog, dataset, BASE, model_name="c", alias=None)
    assert seen == []  # the hook is gone after its block


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"space": {}}, r"\[tune.space\] is empty"),
        ({"space": {"learning_rat": {"low": 0.1, "high": 1.0}}}, r"learning_rat: unknown parameter"),
        ({"space": {"family": {"choices": ["gan"]}}}, r"family: unknown parameter"),
        ({"space": {"learning_rate": {"low": 0.1, "high": 0.01}}}, r"low must be below high"),
        ({"space": {"learning_rate": {"low": 0.0, "high": 1.0, "log": True}}}, r"log needs low > 0"),
        ({"space": {"learning_rate": {"choices": []}}}, r"choices is empty"),
        ({"space": {"epochs": {"low": 1.5, "high": 3}}}, r"epochs is an integer option"),
        ({"space": {"batch_size": {"choices": [0, 16]}}}, r"0 is not a valid batch_size"),
        ({"space": {"lr_schedule": {"low": 1, "high": 2}}}, r"not a number, so give choices"),
        ({"n_trials": 0, "space": SPACE}, r"\[tune\].n_trials: Input should be greater than 0"),
        ({"direction": "down", "space": SPACE}, r"\[tune\].direction"),
        ({"trials": 3, "space": SPACE}, r"\[tune\].trials: unknown key"),
    ],
)
def test_a_bad_tune_section_fails_clearly(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_tune_config(table, source="genloop.toml")


def test_a_missing_tune_section_says_what_to_add(tmp_path: Path) -> None:
    (tmp_path / "genloop.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"has no \[tune\] section") as caught:
        read_tune_config(Workspace(tmp_path))
    assert caught.value.hint and "[tune.space]" in caught.value.hint


CLI_CONFIG = (
    '[project]\nname = "digits"\n\n[collect]\nsource = "mnist-5k"\nlimit = 40\ntest_fraction = 0.25\n\n'
    "[train]\nepochs = 1\nbatch_size = 16\nlatent_dim = 4\nhidden_channels = 4\ngrid_per_class = 1\n\n"
    "[tune]\nn_trials = 2\n\n[tune.space]\nlearning_rate = {low = 1e-4, high = 1e-2, log = true}\n"
)


def genloop_tune(
    tmp_path: Path, config: str, timeout: float
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path / "ws"
    root.mkdir(exist_ok=True)
    (root / "genloop.toml").write_text(config, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "GENLOOP_DATABASE_URL"}
    command = [sys.executable, "-m", "genloop.cli.main", "tune", "-w", str(root)]
    return root, subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_tune_refuses_a_bad_space_before_any_work(tmp_path: Path) -> None:
    root, bad = genloop_tune(tmp_path, CLI_CONFIG.replace("learning_rate =", "learning_rat ="), 60)
    assert bad.returncode == 2
    assert "[tune.space].learning_rat: unknown parameter" in bad.stderr and "tunable:" in bad.stderr
    assert not (root / ".genloop").exists()


@pytest.mark.slow  # ~20 s: collect → annotate, then two trials, in a fresh interpreter
def test_cli_tune_prints_the_best_train_snippet(tmp_path: Path) -> None:
    root, done = genloop_tune(tmp_path, CLI_CONFIG, 120)
    assert done.returncode == 0, done.stderr[-3000:]
    snippet = tomllib.loads(done.stdout)
    assert list(snippet["train"]) == ["learning_rate"]
    assert (root / ".genloop" / "tune" / "digits-vae" / "best.toml").read_text() == done.stdout
