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

from ..core.device import pick_device
from ..core.losses import dpo_loss
from ..core.model import GPT, token_logprobs
from ..core.train import Callback, History, TrainConfig, Trainer
from .reward_model import EncodedPairs, PairBatches


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


def response_lengths(ids: torch.Tensor, last: torch.Tensor, assistant_id: int) -> torch.Tensor:
    """Tokens in each row's response (the ones ``response_logprobs`` sums): (N,)."""
    start = (ids == assistant_id).float().argmax(dim=1)
    return (last.to(ids.device) - start).clamp(min=1)


def dpo_loss_fn(reference: GPT, assistant_id: int, beta: float, nll_coef: float = 0.0
                ) -> Callable[[nn.Module, tuple], torch.Tensor]:
    """A ``Trainer`` loss: DPO on a ``PairBatches`` batch against the frozen ``reference``.

    ``nll_coef`` > 0 adds that many times the chosen answers' mean negative
    log-likelihood per token (the "DPO + NLL" of Pang et al., 2024): plain DPO
    only cares about the *difference* between chosen and rejected, and can
    lower both; the extra term keeps the chosen answers likely.
    """
    if nll_coef < 0:
        raise ValueError(f"nll_coef must be >= 0, got {nll_coef}")

    def loss_fn(policy: nn.Module, batch) -> torch.Tensor:
        chosen, rejected = pair_logprobs(policy, batch, assistant_id)
        with torch.no_grad():
            ref_chosen, ref_rejected = pair_logprobs(reference, batch, assistant_id)
        loss = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta)[0]
        if nll_coef:
            ids, last = batch
            n = response_lengths(ids, last, assistant_id)[: chosen.shape[0]]
            loss = loss + nll_coef * (-chosen / n).mean()
        return loss
    return loss_fn


def train_dpo(policy: GPT, reference: GPT, encoded: EncodedPairs, assistant_id: int,
              steps: int, beta: float = 0.1, batch_size: int = 32, lr: float = 1e-5,
              seed: int = 0, device: str = "auto", nll_coef: float = 0.0,
              eval_fn: Callable[[nn.Module], dict] | None = None, eval_every: int = 0,
              callbacks: list[Callback] | None = None) -> History:
    """Train ``policy`` in place with DPO on ``encoded`` pairs; ``reference`` stays frozen.

    The course's ``Trainer`` (AdamW, warmup, cosine decay, clipping) with
    ``PairBatches`` and ``dpo_loss_fn``: the same loop as every other chapter.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if reference is policy:
        raise ValueError("the reference must be a separate model: pass copy.deepcopy(policy)")
    reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    policy.requires_grad_(True)  # even when it was copied from a frozen reference
    config = TrainConfig(max_steps=steps, lr=lr, weight_decay=0.0, device=device, seed=seed,
                         log_every=1, eval_every=eval_every, progress=False)
    reference.to(pick_device(device))  # where the Trainer puts the policy
    trainer = Trainer(policy, PairBatches(encoded, batch_size, seed), config,
                      loss_fn=dpo_loss_fn(reference, assistant_id, beta, nll_coef),
                      eval_fn=eval_fn,
                      callbacks=callbacks)
    history = trainer.fit()
    policy.eval()
    return history


@torch.no_grad()
def side_logprobs(model: GPT, encoded: EncodedPairs, assistant_id: int,
                   batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs of the chosen and rejected sides under ``model``: (N,) each."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    chosen, rejected = [], []
    with torch.no_grad():
        for i in range(0, encoded.num_pairs, batch_size):
            part = encoded.subset(slice(i, i + batch_size))
            ids = torch.cat([part.chosen_ids, part.rejected_ids]).to(device)
            last = torch.cat([part.chosen_last, part.rejected_last]).to(device)
            c, r = pair_logprobs(model, (ids, last), assistant_id)
            chosen.append(c.float().cpu())
            rejected.append(r.float().cpu())
    model.train(was)
    return torch.cat(chosen), torch.cat(rejected)


def drift(policy: GPT, encoded: EncodedPairs, assistant_id: int,
          reference_logprobs: tuple[torch.Tensor, torch.Tensor], batch_size: int = 128) -> float:
    """How far training moved the policy on fixed answers: the mean |log pi - log pi_ref| over
    both answers of every pair, in nats per answer.

    A cheap and noise-free stand-in for the KL to the reference, which needs answers sampled
    from the policy; ``reference_logprobs`` is ``side_logprobs(reference, encoded, ...)``.
    """
    pc, pr = side_logprobs(policy, encoded, assistant_id, batch_size)
    rc, rr = reference_logprobs
    return float(((pc - rc).abs().mean() + (pr - rr).abs().mean()) / 2)


def implicit_rewards(policy: GPT, reference: GPT | None, encoded: EncodedPairs,
                     assistant_id: int, beta: float, batch_size: int = 128,
                     reference_logprobs: tuple[torch.Tensor, torch.Tensor] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's implicit rewards beta * log(pi / pi_ref) of the chosen and rejected sides: (N,) each.

    The policy "prefers" the chosen answer when its implicit reward is the
    larger; the share of such pairs is its pair accuracy, comparable with a
    reward model's. The frozen reference's log-probs never change: pass them
    as ``reference_logprobs`` (``side_logprobs(reference, encoded, ...)``) to
    skip its forward passes.
    """
    if reference_logprobs is None:
        if reference is None:
            raise ValueError("implicit_rewards needs the reference model or its log-probs")
        reference_logprobs = side_logprobs(reference, encoded, assistant_id, batch_size)
    pc, pr = side_logprobs(policy, encoded, assistant_id, batch_size)
    rc, rr = reference_logprobs
    return beta * (pc - rc), beta * (pr - rr)


def dpo_eval_fn(reference: GPT, encoded: EncodedPairs, assistant_id: int, beta: float,
                reference_logprobs: tuple[torch.Tensor, torch.Tensor] | None = None):
    """An ``eval_fn`` for ``train_dpo``: pair accuracy and mean implicit-reward margin.

    The frozen reference's log-probs are computed at the first call and reused; pass
    ``reference_logprobs`` (``side_logprobs(reference, encoded, ...)``) if you have them.
    """
    cache = {} if reference_logprobs is None else {"ref": reference_logprobs}

    def evaluate(policy) -> dict:
        if "ref" not in cache:
            cache["ref"] = side_logprobs(reference, encoded, assistant_id, 128)
        c, r = implicit_rewards(policy, None, encoded, assistant_id, beta,
                                reference_logprobs=cache["ref"])
        return {"pair_accuracy": float((c > r).float().mean()),
                "margin": float((c - r).mean()), "chosen": float(c.mean()),
                "rejected": float(r.mean())}
    return evaluate
