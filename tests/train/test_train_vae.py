"""Training end to end on real digits: artifacts, catalog rows, reuse, fine-tuning, learning."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from sqlalchemy import select

from genloop.catalog import open_catalog
from genloop.catalog.models import ModelVersion, Run, RunDataset, RunMetric
from genloop.config import TrainConfig
from genloop.data.datasets import write_dataset_version
from genloop.errors import DataError, GenloopError
from genloop.models.versions import resolve_model_version
from genloop.train import train_model
from genloop.train.recipes.vae import draw_captions
from genloop.workspace import Workspace
from support.mnist import MakeDigits

TINY = TrainConfig(
    epochs=2, batch_size=32, latent_dim=4, hidden_channels=4, checkpoint_every_steps=3, grid_per_class=2
)


def metric_values(workspace: Workspace, run_id: str, name: str) -> list[float]:
    catalog = open_catalog(workspace.database_url)
    with catalog.session() as session:
        rows = session.scalars(
            select(RunMetric)
            .where(RunMetric.run_id == run_id, RunMetric.name == name)
            .order_by(RunMetric.step)
        ).all()
        return [row.value for row in rows]


def test_training_writes_artifacts_and_catalog_rows_and_a_rerun_reuses_them(
    workspace: Workspace, make_digits: MakeDigits
) -> None:
    dataset = make_digits(workspace, per_class=16)
    catalog = open_catalog(workspace.database_url)
    train_records = len(dataset.records("train"))
    steps = 2 * -(-train_records // 32)

    result = train_model(workspace, catalog, dataset, TINY, model_name="digits")

    assert (result.model_version_id, result.resumed_from_step, result.epochs) == ("digits-v1", None, 2)
    assert set(result.metrics) == {"train_loss", "heldout_loss", "heldout_recon", "heldout_kl"}
    assert resolve_model_version(catalog, "digits@champion") == "digits-v1"
    run_dir = workspace.state_dir / "runs" / result.run_id
    grid = Image.open(run_dir / "samples" / "epoch-002.png")
    assert grid.size == (2 * 30 + 2, 10 * 30 + 2)  # columns = grid_per_class, rows = classes
    assert (run_dir / "samples" / "epoch-001.png").is_file()
    assert (run_dir / "config.json").is_file()
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and checkpoints[-1] == f"step-{steps:08d}"
    with catalog.session() as session:
        run = session.get(Run, result.run_id)
        assert run is not None
        assert (run.status, run.epochs_done, run.steps_done, run.family) == ("completed", 2, steps, "vae")
        assert run.finished_at is not None
        roles = session.scalars(select(RunDataset).where(RunDataset.run_id == run.id)).all()
        assert [(r.dataset_version_id, r.role) for r in roles] == [(dataset.id, "train")]
    assert len(metric_values(workspace, result.run_id, "epoch_train_loss")) == 2
    assert len(metric_values(workspace, result.run_id, "epoch_heldout_loss")) == 2
    assert len(metric_values(workspace, result.run_id, "train_loss")) == steps // 5
    # the same metrics as TensorBoard events, readable by TensorBoard's own loader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("epoch_train_loss")) == 2
    assert [e.step for e in events.Scalars("train_loss")] == [5 * (i + 1) for i in range(steps // 5)]

    again = train_model(workspace, catalog, dataset, TINY, model_name="digits")
    assert again.already_completed and again.model_version_id == "digits-v1"
    assert again.run_id == result.run_id and again.metrics == result.metrics
    with catalog.session() as session:
        assert len(session.scalars(select(ModelVersion)).all()) == 1


def test_loss_decreases_over_training(sqlite_workspace: Workspace, make_digits: MakeDigits) -> None:
    dataset = make_digits(sqlite_workspace, per_class=80)
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = TrainConfig(
        epochs=4, batch_size=16, learning_rate=3e-3, latent_dim=8, hidden_channels=16, grid_per_class=1
    )
    result = train_model(sqlite_workspace, catalog, dataset, cfg, model_name="digits")
    train_loss = metric_values(sqlite_workspace, result.run_id, "epoch_train_loss")
    heldout = metric_values(sqlite_workspace, result.run_id, "epoch_heldout_loss")
    assert len(train_loss) == len(heldout) == 4
    # the first epoch already starts from the class means (≈ 165 nats); learning shapes takes it lower
    assert train_loss[-1] < 0.9 * train_loss[0], train_loss
    assert heldout[-1] < 0.9 * heldout[0], heldout


def test_fine_tuning_links_the_parent_and_adds_the_extra_data(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=16)
    catalog = open_catalog(sqlite_workspace.database_url)
    first = train_model(sqlite_workspace, catalog, dataset, TINY, model_name="digits")
    liked = [r for r in dataset.records("train") if r.label == "3"][:4]
    feedback = write_dataset_version(
        sqlite_workspace, catalog, liked, name="digits-feedback", stage="feedback", classes=dataset.classes
    )
    tuned = train_model(
        sqlite_workspace,
        catalog,
        dataset,
        TINY.model_copy(update={"epochs": 1}),
        model_name="digits",
        init_from="digits",
        extra_datasets=[(feedback, "feedback", 5)],
        alias="challenger",
        feedback_count=4,
    )
    assert tuned.model_version_id == "digits-v2" and tuned.run_id != first.run_id
    assert resolve_model_version(catalog, "digits") == "digits-v1"  # the champion stays
    assert resolve_model_version(catalog, "digits@challenger") == "digits-v2"
    with catalog.session() as session:
        version = session.get(ModelVersion, "digits-v2")
        assert version is not None and (version.parent_id, version.feedback_count) == ("digits-v1", 4)
        roles = session.scalars(select(RunDataset).where(RunDataset.run_id == tuned.run_id)).all()
        assert sorted((r.dataset_version_id, r.role) for r in roles) == sorted(
            [(dataset.id, "train"), (feedback.id, "feedback")]
        )
        run = session.get(Run, tuned.run_id)
        assert run is not None and run.parent_model_version_id == "digits-v1"
        steps = -(-(len(dataset.records("train")) + 5 * len(liked)) // 32)
        assert run.steps_done == steps  # the liked digits were added five times


def test_bad_inputs_are_errors_that_say_what_to_do(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=4)
    catalog = open_catalog(sqlite_workspace.database_url)
    with pytest.raises(GenloopError, match=r"model family 'stylegan' is not available; available: .*vae"):
        train_model(sqlite_workspace, catalog, dataset, TrainConfig(family="stylegan"), model_name="digits")
    stray = [r.with_changes(label="cat") for r in dataset.records("train")[:2]]
    odd = write_dataset_version(sqlite_workspace, catalog, stray, name="odd", stage="feedback")
    with pytest.raises(DataError, match="has label 'cat', not one of the classes") as error:
        train_model(
            sqlite_workspace,
            catalog,
            dataset,
            TINY,
            model_name="digits",
            extra_datasets=[(odd, "feedback", 1)],
        )
    assert error.value.hint
    with pytest.raises(GenloopError, match="no model version or model named 'nothing'"):
        train_model(sqlite_workspace, catalog, dataset, TINY, model_name="digits", init_from="nothing")


def test_the_captions_of_a_step_depend_only_on_the_seed_and_the_step() -> None:
    captions = torch.arange(3 * 4, dtype=torch.float32).view(3, 4, 1)  # (K=3, T=4, D=1): value = 4k + t
    labels = torch.tensor([0, 1, 2, 2, 1, 0] * 8)
    drawn = draw_captions(captions, labels, seed=5, step=7)
    assert torch.equal(drawn, draw_captions(captions, labels, seed=5, step=7))  # a resumed step redraws them
    assert not torch.equal(drawn, draw_captions(captions, labels, seed=5, step=8))
    assert not torch.equal(drawn, draw_captions(captions, labels, seed=6, step=7))
    assert torch.equal(drawn[:, 0].div(4).floor().long(), labels)  # always a caption of the image's class
    assert len(set(drawn[:, 0].tolist())) > 6  # and not always the same one
