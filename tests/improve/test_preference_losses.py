"""The preference losses against hand-computed values on small tensors, their gradients' direction,
and the prompt masking of sequence log-probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from genloop.errors import GenloopError
from genloop.improve.preference_losses import (
    completion_batch,
    dpo_loss,
    kto_loss,
    sequence_log_probs,
    sft_loss,
)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_dpo_loss_matches_the_formula_by_hand() -> None:
    policy_chosen = torch.tensor([-1.0, -2.0])
    policy_rejected = torch.tensor([-1.5, -1.0])
    ref_chosen = torch.tensor([-1.2, -2.0])
    ref_rejected = torch.tensor([-1.2, -1.5])
    result = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.5)
    # pair 1: 0.5·[(−1.0+1.2) − (−1.5+1.2)] = 0.25; pair 2: 0.5·[0 − 0.5] = −0.25
    expected = (-math.log(_sigmoid(0.25)) - math.log(_sigmoid(-0.25))) / 2
    assert float(result.loss) == pytest.approx(expected, abs=1e-6)
    assert result.rewards.tolist() == pytest.approx([0.25, -0.25])
    assert result.accuracy == 0.5


def test_dpo_gradient_raises_chosen_relative_to_rejected() -> None:
    chosen = torch.tensor([-3.0, -2.0], requires_grad=True)
    rejected = torch.tensor([-2.0, -2.5], requires_grad=True)
    result = dpo_loss(chosen, rejected, torch.tensor([-3.0, -2.0]), torch.tensor([-2.0, -2.5]), beta=0.1)
    assert float(result.loss.detach()) == pytest.approx(math.log(2))  # π = π_ref: margin 0
    result.loss.backward()
    assert chosen.grad is not None and rejected.grad is not None
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()  # descent: chosen up, rejected down
    # a gradient step on the log-probs widens the margin
    with torch.no_grad():
        stepped = dpo_loss(
            chosen - chosen.grad,
            rejected - rejected.grad,
            torch.tensor([-3.0, -2.0]),
            torch.tensor([-2.0, -2.5]),
            beta=0.1,
        )
    assert float(stepped.loss) < math.log(2) and stepped.accuracy == 1.0


def test_kto_loss_matches_the_formula_by_hand() -> None:
    policy = torch.tensor([-1.0, -3.0, -2.0])
    reference = torch.tensor([-1.5, -2.5, -2.0])
    desirable = torch.tensor([True, False, True])
    mismatched_policy = torch.tensor([-4.0, -5.0])
    mismatched_reference = torch.tensor([-4.4, -5.2])
    result = kto_loss(
        policy,
        reference,
        desirable,
        mismatched_policy,
        mismatched_reference,
        beta=1.0,
        desirable_weight=1.0,
        undesirable_weight=2.0,
    )
    z0 = (0.4 + 0.2) / 2  # mean log-ratio of the mismatched pairs
    expected = ((1 - _sigmoid(0.5 - z0)) + (2 - 2 * _sigmoid(z0 + 0.5)) + (1 - _sigmoid(0 - z0))) / 3
    assert result.kl == pytest.approx(z0)
    assert float(result.loss) == pytest.approx(expected, abs=1e-6)
    assert result.accuracy == pytest.approx(2 / 3)  # example 3 sits below z0 although desirable


def test_kto_reference_point_is_clamped_and_carries_no_gradient() -> None:
    policy = torch.tensor([-1.0, -1.0], requires_grad=True)
    mismatched = torch.tensor([-6.0], requires_grad=True)
    result = kto_loss(
        policy, torch.tensor([-1.0, -1.0]), torch.tensor([True, False]), mismatched, torch.tensor([-5.0])
    )
    assert result.kl == 0.0  # the estimate −1 is clamped at 0
    assert float(result.loss.detach()) == pytest.approx(0.5)  # 1 − σ(0) on both sides
    result.loss.backward()
    assert policy.grad is not None and policy.grad[0] < 0 < policy.grad[1]
    assert mismatched.grad is None or float(mismatched.grad.abs().sum()) == 0.0


def test_completion_batch_masks_the_prompt_and_pads() -> None:
    inputs, targets, mask = completion_batch([([5, 6], [7, 8]), ([9], [3])], pad_id=0, max_length=8)
    assert inputs.tolist() == [[5, 6, 7], [9, 3, 0]]  # the last input is never scored
    assert targets.tolist() == [[6, 7, 8], [3, 0, 0]]
    assert mask.tolist() == [[False, True, True], [True, False, False]]


def test_completion_batch_cuts_the_prompt_first() -> None:
    inputs, targets, mask = completion_batch([([1, 2, 3, 4], [7, 8])], pad_id=0, max_length=3)
    assert inputs.tolist() == [[3, 4, 7]] and targets.tolist() == [[4, 7, 8]]
    assert mask.tolist() == [[False, True, True]]
    with pytest.raises(GenloopError, match="empty prompt"):
        completion_batch([([], [1])], pad_id=0, max_length=3)


def test_sequence_log_probs_sum_only_the_completion() -> None:
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]]))  # (1, 3, 3)
    targets = torch.tensor([[0, 1, 2]])
    mask = torch.tensor([[False, True, True]])
    assert float(sequence_log_probs(logits, targets, mask)[0]) == pytest.approx(math.log(0.6 * 0.6))


def test_sft_loss_weights_rows_per_token() -> None:
    log_probs = torch.tensor([-4.0, -1.0])
    lengths = torch.tensor([2.0, 1.0])
    assert float(sft_loss(log_probs, lengths)) == pytest.approx(5.0 / 3.0)
    assert float(sft_loss(log_probs, lengths, torch.tensor([0.0, 1.0]))) == pytest.approx(1.0)
    with pytest.raises(GenloopError, match="weights"):
        sft_loss(log_probs, lengths, torch.tensor([0.0, 0.0]))
