"""Direct preference optimisation (DPO): preference tuning without a reward model.

DPO (Rafailov et al., 2023) notices that the policy that maximises
"reward - beta * KL to the reference" has a closed form, and turns it around:
any policy defines an *implicit reward*, r(x, y) = beta * log(pi(y|x) / pi_ref(y|x)).
Plugging that reward into the Bradley-Terry loss of chapter 07 trains the
policy directly on preference pairs: no reward model, no sampling, no RL.

Inputs are the same ``reward.EncodedPairs`` the reward model trains on
(right-padded conversations in the course's chat template). The
log-probability of a response sums its tokens only: everything after
``<|assistant|>`` up to and including the closing ``<|end|>``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from .device import pick_device
from .losses import dpo_loss
from .model import GPT, token_logprobs
from .reward import EncodedPairs, PairBatches
from .train import Callback, History, TrainConfig, Trainer


def response_logprobs(model: GPT, ids: torch.Tensor, last: torch.Tensor,
                      assistant_id: int) -> torch.Tensor:
    """Summed log p of each row's response tokens: (N, L) right-padded rows -> (N,).

    The response is every token after the row's first ``assistant_id`` token
    up to ``last`` (the column of its closing ``<|end|>``), both included.
    Rows are cut to the longest ``last``, so padding never enters the sum.
    """
    if ids.ndim != 2 or last.shape != (ids.shape[0],):
        raise ValueError(f"need ids (N, L) and last (N,), got {tuple(ids.shape)} and "
                         f"{tuple(last.shape)}")
    is_assistant = ids == assistant_id
    if not bool(is_assistant.any(dim=1).all()):
        raise ValueError("every row needs an <|assistant|> token: encode with reward.encode_pairs")
    width = int(last.max()) + 1
    ids = ids[:, :width]
    start = is_assistant[:, :width].float().argmax(dim=1)  # column of <|assistant|>
    logp = token_logprobs(model, ids)  # (N, W-1): logp[:, t] = log p(ids[:, t + 1])
    t = torch.arange(width - 1, device=ids.device)
    mask = (t[None] >= start[:, None]) & (t[None] < last.to(ids.device)[:, None])
    return (logp * mask).sum(dim=1)


def pair_logprobs(model: GPT, batch: tuple[torch.Tensor, torch.Tensor], assistant_id: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) response log-probs of a ``reward.PairBatches`` batch."""
    ids, last = batch
    logps = response_logprobs(model, ids, last, assistant_id)
    half = logps.shape[0] // 2
    return logps[:half], logps[half:]


def dpo_loss_fn(reference: GPT, assistant_id: int, beta: float
                ) -> Callable[[nn.Module, tuple], torch.Tensor]:
    """A ``Trainer`` loss: DPO on a ``PairBatches`` batch against the frozen ``reference``."""
    def loss_fn(policy: nn.Module, batch) -> torch.Tensor:
        chosen, rejected = pair_logprobs(policy, batch, assistant_id)
        with torch.no_grad():
            ref_chosen, ref_rejected = pair_logprobs(reference, batch, assistant_id)
        return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta)[0]
    return loss_fn


def train_dpo(policy: GPT, reference: GPT, encoded: EncodedPairs, assistant_id: int,
              steps: int, beta: float = 0.1, batch_size: int = 32, lr: float = 1e-5,
              seed: int = 0, device: str = "auto",
              eval_fn: Callable[[nn.Module], dict] | None = None, eval_every: int = 0,
              callbacks: list[Callback] | None = None) -> History:
    """Train ``policy`` in place with DPO on ``encoded`` pairs; ``reference`` stays frozen.

    The course's ``Trainer`` (AdamW, warmup, cosine decay, clipping) with
    ``PairBatches`` and ``dpo_loss_fn``: the same loop as every other chapter.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    config = TrainConfig(max_steps=steps, lr=lr, weight_decay=0.0, device=device, seed=seed,
                         log_every=1, eval_every=eval_every, progress=False)
    reference.to(pick_device(device))  # where the Trainer puts the policy
    trainer = Trainer(policy, PairBatches(encoded, batch_size, seed), config,
                      loss_fn=dpo_loss_fn(reference, assistant_id, beta), eval_fn=eval_fn,
                      callbacks=callbacks)
    history = trainer.fit()
    policy.eval()
    return history
