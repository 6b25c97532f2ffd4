"""Losses as pure functions: tensors in, a tensor out, shapes in the docstring.

Trainers receive a loss function; they never choose between losses with
``if`` chains. Later chapters add their objectives here (Bradley-Terry, DPO,
PPO, distillation) in the same style.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # label value for positions that do not count in the loss


def next_token_loss(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Mean cross-entropy of the next-token predictions, in nats.

    logits: (B, T, V) scores for the token after each position.
    targets: (B, T) the true next tokens; ``ignore_index`` marks positions to skip.
    Returns a scalar: the average of -ln p(true token) over counted positions.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=ignore_index,
    )


def surprise(p_true: float | torch.Tensor, unit: str = "nats"):
    """The loss at one position: -log p of the true token, in nats or bits."""
    if unit not in ("nats", "bits"):
        raise ValueError(f"unit must be 'nats' or 'bits', got {unit!r}")
    p = torch.as_tensor(p_true, dtype=torch.float64)
    if bool(((p <= 0) | (p > 1)).any()):
        raise ValueError("a probability must be in (0, 1]")
    nats = -torch.log(p)
    out = nats / math.log(2) if unit == "bits" else nats
    return float(out) if out.ndim == 0 else out


def nats_to_bits(nats: float) -> float:
    """1 nat = 1/ln 2 = 1.4427 bits."""
    return nats / math.log(2)


def perplexity(loss_nats: float) -> float:
    """exp(loss): the number of equally likely tokens the model is as unsure as."""
    return math.exp(loss_nats)


def uniform_loss(vocab_size: int) -> float:
    """Loss of a model that spreads probability evenly over ``vocab_size`` tokens: ln V."""
    return math.log(vocab_size)


def bradley_terry_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor
) -> torch.Tensor:
    """The reward model's loss on preference pairs, in nats.

    chosen_rewards, rejected_rewards: (B,) scalar rewards of the preferred
    and the other response of each pair. The Bradley-Terry model says
    P(chosen preferred) = sigmoid(r_chosen - r_rejected); the loss is the
    mean of -ln of that probability over the B pairs. It is ln 2 = 0.693
    when the rewards are equal (a coin flip), falls towards 0 as the margin
    grows, and grows about linearly with a wrong-way margin.

    ``F.logsigmoid`` computes ln sigmoid(x) without overflow, so margins of
    +-1000 are fine (``torch.log(torch.sigmoid(x))`` would give -inf).
    """
    for name, t in (("chosen_rewards", chosen_rewards), ("rejected_rewards", rejected_rewards)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
        if t.ndim != 1 or t.numel() == 0:
            raise ValueError(
                f"{name} must have shape (B,) with B >= 1 (one reward per pair), got "
                f"{tuple(t.shape)}: squeeze a trailing 1 with .squeeze(-1)"
            )
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(
            f"chosen_rewards {tuple(chosen_rewards.shape)} and rejected_rewards "
            f"{tuple(rejected_rewards.shape)} must have the same shape: one of each per pair"
        )
    margin = chosen_rewards.float() - rejected_rewards.float()
    return -F.logsigmoid(margin).mean()


def preference_probability(margin: float | torch.Tensor):
    """P(A preferred to B) = sigmoid(r_A - r_B) under Bradley-Terry; ``margin`` = r_A - r_B.

    A margin of 0 gives 0.5; 1 gives 0.73; 3 gives 0.95. A float in gives a
    float out; a tensor in gives a tensor of the same shape.
    """
    if isinstance(margin, torch.Tensor):
        return torch.sigmoid(margin)
    return 1.0 / (1.0 + math.exp(-margin)) if margin >= 0 else math.exp(margin) / (
        1.0 + math.exp(margin))
