"""Preference losses on sequence log-probabilities: SFT, DPO and KTO, as pure tensor functions.

Every loss here works on log π(y | x): the summed log-probability of a completion y's tokens
given its prompt x, with the prompt's own tokens masked out. Any causal LM fits (genloop's GPT,
the music Transformer on event tokens, a Hugging Face model): `completion_batch` packs
(prompt ids, completion ids) rows, the model turns the inputs into logits, and
`sequence_log_probs` sums the completion's token log-probs.

    DPO (Rafailov et al. 2023, https://arxiv.org/abs/2305.18290):
        r(x, y) = β · (log π(y|x) − log π_ref(y|x))                        implicit reward
        L_DPO   = −log σ(r(x, y_w) − r(x, y_l))                            per pair, averaged

    KTO (Ethayarajh et al. 2024, https://arxiv.org/abs/2402.01306):
        z₀      = max(0, mean_j [log π(y_j'|x_j) − log π_ref(y_j'|x_j)])   KL estimate on mismatched
                                                                           pairs, no gradient
        v(x, y) = λ_D · σ(β(r_θ − z₀))  if y is desirable                  r_θ = log π − log π_ref
                = λ_U · σ(β(z₀ − r_θ))  if y is undesirable
        L_KTO   = mean (λ_y − v(x, y))

    SFT: L = −Σ_i w_i log π(y_i|x_i) / Σ_i w_i |y_i|                        weighted nats per token
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genloop.errors import GenloopError


@dataclass
class PreferenceLoss:
    """A loss with the per-example numbers it came from (detached), for curves and accuracy."""

    loss: torch.Tensor
    """Scalar, differentiable."""
    rewards: torch.Tensor
    """DPO: the reward margin r(x, y_w) − r(x, y_l) per pair; KTO: r_θ − z₀ per example."""
    accuracy: float
    """DPO: fraction of pairs with a positive margin; KTO: fraction on the right side of z₀."""
    kl: float = 0.0
    """KTO's reference point z₀ (0 for DPO)."""


def completion_batch(
    rows: Sequence[tuple[Sequence[int], Sequence[int]]], *, pad_id: int, max_length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(prompt ids, completion ids) rows → inputs, targets, completion mask, (B, T) each.

    The sequence is prompt + completion; inputs = seq[:-1], targets = seq[1:], and the mask
    is 1 exactly where a target is a completion token. Rows are right-padded with `pad_id`
    (harmless for a causal model: padding only follows real tokens). A row longer than
    `max_length` + 1 tokens loses prompt tokens from the left first, then the completion's
    tail, so the scored part always starts at the completion's first token.
    """
    if not rows:
        raise GenloopError("completion_batch needs at least one (prompt, completion) row")
    if max_length < 1:
        raise GenloopError(f"max_length must be ≥ 1 (got {max_length})")
    sequences, starts = [], []
    for i, (prompt, completion) in enumerate(rows):
        if not prompt:
            raise GenloopError(
                f"row {i} has an empty prompt: the first completion token needs a token before it",
                hint="start every prompt with the model's start token (e.g. <eos> or BOS)",
            )
        if not completion:
            raise GenloopError(f"row {i} has an empty completion: there is nothing to score")
        keep_prompt = max(1, min(len(prompt), max_length + 1 - len(completion)))
        sequence = [*prompt[len(prompt) - keep_prompt :], *completion][: max_length + 1]
        sequences.append(sequence)
        starts.append(keep_prompt)
    T = max(len(s) for s in sequences) - 1
    ids = torch.full((len(rows), T + 1), pad_id, dtype=torch.long)  # (B, T+1)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)  # (B, T)
    for i, (sequence, start) in enumerate(zip(sequences, starts, strict=True)):
        ids[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[i, start - 1 : len(sequence) - 1] = True  # target t is seq[t+1]: completion from start
    return ids[:, :-1], ids[:, 1:], mask


def sequence_log_probs(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_t mask · log softmax(logits)[target] per row: logits (B, T, V), targets/mask (B, T) → (B,)."""
    if logits.shape[:2] != targets.shape or targets.shape != mask.shape:
        raise GenloopError(
            f"logits {tuple(logits.shape)}, targets {tuple(targets.shape)} and mask {tuple(mask.shape)} "
            "must agree on (B, T)"
        )
    token_logps = -F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none").view_as(
        targets
    )  # (B, T)
    return (token_logps * mask).sum(dim=1)


def sft_loss(
    log_probs: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted negative log-likelihood per token: −Σ w_i log π(y_i) / Σ w_i |y_i|.

    log_probs (B,) summed completion log-probs, lengths (B,) completion tokens, weights (B,) ≥ 0
    (an edit or a strong like can count more than a plain like); None weighs every row 1.
    """
    weights = torch.ones_like(log_probs) if weights is None else weights.to(log_probs)
    if (weights < 0).any() or float(weights.sum()) <= 0:
        raise GenloopError(f"SFT weights must be ≥ 0 and not all 0 (got {weights.tolist()[:8]})")
    return -(weights * log_probs).sum() / (weights * lengths.to(log_probs)).sum().clamp_min(1.0)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    *,
    beta: float = 0.1,
) -> PreferenceLoss:
    """DPO on (B,) summed log-probs of the chosen and rejected completions of B pairs.

    L = mean −log σ(β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))]);
    its gradient raises log π(y_w) and lowers log π(y_l), weighted by how wrong the
    implicit reward ordering still is.
    """
    _check_beta(beta)
    margin = beta * ((policy_chosen - reference_chosen) - (policy_rejected - reference_rejected))  # (B,)
    loss = -F.logsigmoid(margin).mean()
    detached = margin.detach()
    return PreferenceLoss(loss, detached, float((detached > 0).float().mean()))


def kto_loss(
    policy: torch.Tensor,
    reference: torch.Tensor,
    desirable: torch.Tensor,
    policy_mismatched: torch.Tensor,
    reference_mismatched: torch.Tensor,
    *,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> PreferenceLoss:
    """KTO on B unpaired examples: (B,) summed log-probs under the policy and the reference,
    `desirable` (B,) bool, and the log-probs of mismatched (prompt i, completion j≠i) pairs
    that estimate KL(π ‖ π_ref) for the reference point z₀ (clamped at 0, no gradient).

    The paper's loss λ_y − v(x, y) (so 0 is perfect); λ_D / λ_U balance the two kinds, e.g.
    λ_D · n_D ≈ λ_U · n_U when one kind of thumb is much more common (paper §4.2).
    """
    _check_beta(beta)
    if desirable_weight < 0 or undesirable_weight < 0:
        raise GenloopError(
            f"KTO weights must be ≥ 0 (got desirable {desirable_weight}, undesirable {undesirable_weight})"
        )
    desirable = desirable.to(torch.bool)
    z0 = (policy_mismatched - reference_mismatched).mean().clamp_min(0).detach()
    log_ratio = policy - reference  # (B,)
    value = torch.where(
        desirable,
        desirable_weight * torch.sigmoid(beta * (log_ratio - z0)),
        undesirable_weight * torch.sigmoid(beta * (z0 - log_ratio)),
    )
    lambdas = torch.where(
        desirable, torch.tensor(desirable_weight).to(value), torch.tensor(undesirable_weight).to(value)
    )
    loss = (lambdas - value).mean()
    side = (log_ratio - z0).detach()
    right = torch.where(desirable, side > 0, side < 0)
    return PreferenceLoss(loss, side, float(right.float().mean()), kl=float(z0))


def _check_beta(beta: float) -> None:
    if not beta > 0:
        raise GenloopError(
            f"beta must be > 0 (got {beta})",
            hint="0.1 is the usual value; larger stays closer to the reference",
        )
