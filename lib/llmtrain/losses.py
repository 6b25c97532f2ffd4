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
