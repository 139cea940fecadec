"""Promotion gates on both catalogs: champion comparison, thresholds, missing metrics, --force."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import DatasetVersion, Evaluation, Run
from genloop.config import GateConfig, parse_config
from genloop.errors import ConfigError
from genloop.models.gates import GateError, check_gates
from genloop.models.vae import ConditionalVAE
from genloop.models.versions import alias_history, promote, register_model_version, resolve_model_version
from genloop.workspace import Workspace

ACCURACY = GateConfig(
    metric="conditional_accuracy", rule="no_worse_than_champion", tolerance=0.05, direction="higher_is_better"
)
FD = GateConfig(
    metric="fd_classifier", rule="no_worse_than_champion", tolerance=0.1, direction="lower_is_better"
)


@pytest.fixture
def catalog(workspace: Workspace, tmp_path: Path) -> Catalog:
    """digits-v1 (champion), digits-v2, digits-v3: registered, not yet evaluated."""
    catalog = open_catalog(workspace.database_url)
    with catalog.session() as session:
        session.add(Run(id="run-1", model_name="digits", family="vae", config={}, path="/runs/run-1"))
        for ds in ("ds-1", "ds-2"):
            session.add(
                DatasetVersion(id=ds, name="d", stage="annotate", path="/d", record_count=0, manifest={})
            )
    ConditionalVAE(classes=["a", "b"], image_size=8, latent_dim=2, hidden_channels=2).save(tmp_path / "w")
    common: dict[str, Any] = {
        "name": "digits",
        "family": "vae",
        "run_id": "run-1",
        "weights_dir": tmp_path / "w",
    }
    register_model_version(workspace, catalog, **common)
    register_model_version(workspace, catalog, **common, alias=None)
    register_model_version(workspace, catalog, **common, alias=None)
    return catalog


def evaluate(catalog: Catalog, version_id: str, dataset: str = "ds-1", **metrics: Any) -> None:
    with catalog.session() as session:
        session.add(Evaluation(model_version_id=version_id, dataset_version_id=dataset, metrics=metrics))


def champion(catalog: Catalog) -> str:
    return resolve_model_version(catalog, "digits@champion")


def test_champion_comparison_blocks_a_worse_candidate_and_allows_one_within_tolerance(
    catalog: Catalog,
) -> None:
    evaluate(catalog, "digits-v1", conditional_accuracy=0.86, fd_classifier=10.0)
    evaluate(catalog, "digits-v2", conditional_accuracy=0.71, fd_classifier=10.5)
    evaluate(catalog, "digits-v3", conditional_accuracy=0.83, fd_classifier=10.9)  # 0.83 ≥ 0.817, 10.9 ≤ 11

    with pytest.raises(GateError) as refused:
        promote(catalog, "digits-v2", gates=[ACCURACY, FD])
    assert "conditional_accuracy 0.71 < champion 0.86 − 5 % (0.817)" in str(refused.value)
    assert "fd_classifier" not in refused.value.message  # that gate passed: only failing rules are named
    assert "--force" in (refused.value.hint or "") and "genloop evaluate" not in (refused.value.hint or "")
    assert [r.passed for r in refused.value.results] == [False, True]
    assert champion(catalog) == "digits-v1"

    move = promote(catalog, "digits-v3", gates=[ACCURACY, FD], reason="better samples")
    assert (move.version_id, move.previous_id, move.moved, move.forced) == (
        "digits-v3",
        "digits-v1",
        True,
        False,
    )
    assert [r.message for r in move.gates] == [
        "conditional_accuracy 0.83 ≥ champion 0.86 − 5 % (0.817)",
        "fd_classifier 10.9 ≤ champion 10 + 10 % (11)",
    ]
    assert champion(catalog) == "digits-v3"
    last = alias_history(catalog, "digits", "champion")[-1]
    assert (last.action, last.from_version_id, last.to_version_id, last.forced) == (
        "promote",
        "digits-v1",
        "digits-v3",
        False,
    )
    assert last.reason == "better samples" and [g["passed"] for g in last.gates] == [True, True]


def test_lower_is_better_blocks_a_higher_fd_and_negative_metrics_keep_their_direction(
    catalog: Catalog,
) -> None:
    evaluate(catalog, "digits-v1", fd_classifier=10.0, heldout_elbo=-120.0)
    evaluate(catalog, "digits-v2", fd_classifier=11.5, heldout_elbo=-125.0)
    elbo = GateConfig(
        metric="heldout_elbo", rule="no_worse_than_champion", tolerance=0.05, direction="higher_is_better"
    )
    results = check_gates(catalog, "digits-v2", [FD, elbo])
    assert [r.passed for r in results] == [False, True]  # -125 ≥ -120 - 6
    assert results[0].message == "fd_classifier 11.5 > champion 10 + 10 % (11)"
    assert results[1].bound == pytest.approx(-126.0)


def test_absolute_thresholds_and_nested_metrics(catalog: Catalog) -> None:
    evaluate(
        catalog,
        "digits-v2",
        memorisation_rate=0.02,
        worst_class_accuracy=0.4,
        conditional_accuracy_per_class={"a": 0.9, "b": 0.4},
    )
    gates = [
        GateConfig(metric="memorisation_rate", rule="at_most", value=0.05),
        GateConfig(metric="worst_class_accuracy", rule="at_least", value=0.5),
        GateConfig(metric="conditional_accuracy_per_class.a", rule="at_least", value=0.8),
    ]
    results = check_gates(catalog, "digits-v2", gates)
    assert [(r.passed, r.message) for r in results] == [
        (True, "memorisation_rate 0.02 ≤ 0.05 (at most)"),
        (False, "worst_class_accuracy 0.4 < 0.5 (at least)"),
        (True, "conditional_accuracy_per_class.a 0.9 ≥ 0.8 (at least)"),
    ]
    with pytest.raises(
        GateError, match=r"1 of 3 gates fail\n  ✗ worst_class_accuracy 0.4 < 0.5 \(at least\)\n"
    ):
        promote(catalog, "digits-v2", gates=gates)
    assert champion(catalog) == "digits-v1"


def test_missing_evaluation_or_metric_fails_with_a_hint_to_evaluate(catalog: Catalog) -> None:
    with pytest.raises(GateError, match="digits-v2 has no evaluation") as unevaluated:
        promote(catalog, "digits-v2", gates=[ACCURACY])
    assert "genloop evaluate" in (unevaluated.value.hint or "")

    evaluate(catalog, "digits-v2", heldout_elbo=-110.0, classifier="lenet")
    with pytest.raises(
        GateError, match=r"missing from digits-v2's latest evaluation \(its numeric metrics: heldout_elbo\)"
    ):
        promote(catalog, "digits-v2", gates=[ACCURACY])

    # the champion is compared on the candidate's dataset only
    evaluate(catalog, "digits-v2", "ds-2", conditional_accuracy=0.9)
    evaluate(catalog, "digits-v1", "ds-1", conditional_accuracy=0.8)
    with pytest.raises(
        GateError, match="champion digits-v1 has no evaluation on dataset ds-2"
    ) as other_dataset:
        promote(catalog, "digits-v2", gates=[ACCURACY])
    assert "genloop evaluate" in (other_dataset.value.hint or "")
    evaluate(catalog, "digits-v2", "ds-2", conditional_accuracy=None)
    with pytest.raises(
        GateError, match="conditional_accuracy = None in digits-v2's latest evaluation: not a number"
    ):
        promote(catalog, "digits-v2", gates=[ACCURACY])
    if catalog.url.startswith("sqlite"):  # PostgreSQL's JSON cannot hold NaN at all
        evaluate(catalog, "digits-v2", "ds-2", conditional_accuracy=float("nan"))
        with pytest.raises(GateError, match="not a finite number"):
            promote(catalog, "digits-v2", gates=[ACCURACY])
    assert champion(catalog) == "digits-v1"


def test_force_overrides_failing_gates_and_is_recorded(catalog: Catalog) -> None:
    evaluate(catalog, "digits-v1", conditional_accuracy=0.86)
    evaluate(catalog, "digits-v2", conditional_accuracy=0.71)
    move = promote(catalog, "digits-v2", gates=[ACCURACY], force=True, reason="new style", actor="ana")
    assert move.forced and champion(catalog) == "digits-v2"
    last = alias_history(catalog, "digits", "champion")[-1]
    assert (last.actor, last.forced, last.action) == ("ana", True, "promote")
    assert last.reason is not None and last.reason.startswith("new style (forced past: conditional_accuracy")
    assert last.gates[0]["passed"] is False and last.gates[0]["candidate"] == 0.71
    # --force with passing gates is an ordinary promotion
    evaluate(catalog, "digits-v3", conditional_accuracy=0.9)
    assert not promote(catalog, "digits-v3", gates=[ACCURACY], force=True).forced


def test_gates_guard_only_their_aliases(catalog: Catalog) -> None:
    evaluate(catalog, "digits-v1", conditional_accuracy=0.86)
    evaluate(catalog, "digits-v2", conditional_accuracy=0.5)
    assert promote(catalog, "digits-v2", alias="challenger", gates=[ACCURACY]).gates == ()
    assert resolve_model_version(catalog, "digits@challenger") == "digits-v2"
    guarded = ACCURACY.model_copy(update={"aliases": ["champion", "challenger"]})
    evaluate(catalog, "digits-v3", conditional_accuracy=0.5)
    with pytest.raises(GateError, match="digits-v3 cannot become challenger"):
        promote(catalog, "digits-v3", alias="challenger", gates=[guarded])
    assert resolve_model_version(catalog, "digits@challenger") == "digits-v2"


def test_without_a_champion_the_comparison_passes(
    catalog: Catalog, workspace: Workspace, tmp_path: Path
) -> None:
    register_model_version(
        workspace, catalog, name="cats", family="vae", run_id="run-1", weights_dir=tmp_path / "w", alias=None
    )
    evaluate(catalog, "cats-v1", conditional_accuracy=0.2)
    move = promote(catalog, "cats-v1", gates=[ACCURACY])
    assert (
        move.gates[0].passed
        and move.gates[0].message == "conditional_accuracy: no champion yet, nothing to compare"
    )
    assert (move.previous_id, resolve_model_version(catalog, "cats")) == (None, "cats-v1")


def test_promoting_the_current_version_is_a_no_op(catalog: Catalog) -> None:
    before = len(alias_history(catalog, "digits"))
    move = promote(catalog, "digits-v1", gates=[ACCURACY])
    assert not move.moved and len(alias_history(catalog, "digits")) == before


def test_gate_config_is_validated_with_the_field_named() -> None:
    good = parse_config(
        {
            "gates": [
                {
                    "metric": "fd",
                    "rule": "no_worse_than_champion",
                    "direction": "lower_is_better",
                    "tolerance": 0.05,
                }
            ]
        }
    )
    assert good.gates[0].aliases == ["champion"]
    for gate, message in [
        ({"metric": "fd", "rule": "no_worse_than_champion"}, "needs direction"),
        ({"metric": "fd", "rule": "at_least"}, "needs a `value`"),
        ({"metric": "fd", "rule": "at_most", "value": 1, "tolerance": 0.1}, "`tolerance` is for"),
        ({"metric": "fd", "rule": "better"}, "rule"),
        ({"metric": "fd", "rule": "at_most", "value": 1, "typo": 2}, "unknown key"),
    ]:
        with pytest.raises(ConfigError, match=message) as bad:
            parse_config({"gates": [gate]})
        assert "[gates].0" in str(bad.value)
