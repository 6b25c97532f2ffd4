"""Reward models: learning a score for answers from pairwise preferences.

People find it hard to give an answer a number ("7 out of 10?") but easy to
say which of two answers is better. A reward model turns such comparisons
into a score. It is a GPT whose vocabulary projection is replaced by a
*scalar head*: one number r(prompt, response) read at the last token of the
conversation. It is trained with the Bradley-Terry model of comparisons,

    P(A preferred to B) = sigmoid(r(A) - r(B)),

by minimising ``losses.bradley_terry_loss`` on pairs (chosen, rejected).
Only differences of rewards matter: adding a constant to every reward
changes nothing.

Where the preference labels come from. The course has no human labellers,
so a *hidden judge* plays them: ``judge_score`` gives every answer a gold
score (is it correct? honest? well formed? concise?) and ``label_pair``
turns two gold scores into a noisy preference through a Bradley-Terry draw,
as a tired human would. The reward model never sees the judge, only the
labels; the gold score is what later chapters use to catch a policy that
fools the reward model. Because the labels are noisy, even a perfect model
cannot agree with all of them: ``bayes_accuracy`` is that ceiling.

A first attempt at this chapter learned almost nothing (held-out pair
accuracy 0.51-0.57): a quarter of its pairs were gold ties, whose labels are
coin flips. The judge here has continuous components (length in characters)
so ties are rare, and ``answer_variants`` builds pairs of clearly different
answers (correct, wrong, "I don't know", off-format, rambling) without
teaching any model a wrong fact.

Pipeline::

    pairs = make_pairs(examples, responses_fn)           # gold judge + noisy labels
    data = encode_pairs(tokenizer, pairs, block_size)    # right-padded token ids
    rm = RewardModel.from_gpt(sft_model)                 # copy, new scalar head
    history = train_reward_model(rm, data, steps=300)    # Bradley-Terry loss
    pair_accuracy(rm, heldout_data)                      # share ranked the right way
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.chat import encode_example
from ..core.losses import bradley_terry_loss
from ..core.model import GPT
from ..core.tokenizer import Tokenizer
from ..core.train import Callback, History, TrainConfig, Trainer
from .preferences import PreferencePair


# --- the model ------------------------------------------------------------------
class RewardModel(nn.Module):
    """A GPT backbone with a scalar head: (B, T) token ids -> (B,) rewards.

    The backbone's final hidden states (``GPT.hidden_states``, after the last
    LayerNorm) go through ``head = nn.Linear(n_embd, 1)``, and the reward of a
    row is the head's output at its *last real token* (for the course's chat
    template, the closing ``<|end|>``: by then the model has read the whole
    question and answer).

    Padding. This module right-pads: each row is the conversation followed by
    ``<|pad|>`` tokens, and ``last_index`` (B,) = length - 1 says where each
    conversation ends. Attention is causal, so no real token ever looks at the
    pads after it: no attention mask is needed and positions are the usual
    0, 1, 2, ... Left padding (what generation uses) also works if you pass
    ``attention_mask`` (1 = real token): positions then count real tokens
    only, and the reward is read at the last column. Given only an
    ``attention_mask``, the last 1 of each row is used, which covers both.

    The backbone's language-model output layer is kept (it is tied to the
    token embedding) but unused.
    """

    def __init__(self, backbone: GPT, init_std: float = 0.02, seed: int = 0):
        super().__init__()
        if not isinstance(backbone, GPT):
            raise TypeError(f"backbone must be a llmtrain GPT, got {type(backbone).__name__}")
        if not init_std >= 0:
            raise ValueError(f"init_std must be >= 0 (0 gives a zero head), got {init_std}")
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.n_embd, 1)
        # A small head: every reward starts near 0, so the first losses are near ln 2.
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            w = torch.randn(self.head.weight.shape, generator=g) * init_std
            self.head.weight.copy_(w)
            self.head.bias.zero_()
        self.head.to(next(backbone.parameters()).device)

    @classmethod
    def from_gpt(cls, gpt: GPT, init_std: float = 0.02, seed: int = 0) -> RewardModel:
        """A reward model that starts from a *copy* of ``gpt`` (the original stays untouched).

        Reward models usually start from the SFT model: it already reads the
        chat template and knows the facts the answers are about.
        """
        return cls(copy.deepcopy(gpt), init_std=init_std, seed=seed)

    @property
    def config(self):
        """The backbone's ``GPTConfig`` (block_size, vocab_size, ...)."""
        return self.backbone.config

    def forward(
        self,
        idx: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        last_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Rewards (B,) of the token rows ``idx`` (B, T).

        last_index: (B,) the column of each row's last real token. Without it
        it comes from ``attention_mask`` (its last 1), or is T - 1 (no padding).
        """
        if idx.ndim != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        B, T = idx.shape
        if last_index is None:
            if attention_mask is None:
                last_index = torch.full((B,), T - 1, dtype=torch.long, device=idx.device)
            else:
                if attention_mask.shape != idx.shape:
                    raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must have "
                                     f"the shape of idx {tuple(idx.shape)}")
                flipped = attention_mask.to(idx.device).long().flip(1)
                last_index = T - 1 - flipped.argmax(dim=1)  # column of the last 1
        last_index = torch.as_tensor(last_index, dtype=torch.long, device=idx.device)
        if last_index.shape != (B,):
            raise ValueError(f"last_index must have shape ({B},), one column per row, got "
                             f"{tuple(last_index.shape)}")
        if B and (int(last_index.min()) < 0 or int(last_index.max()) >= T):
            raise ValueError(f"last_index must be in [0, {T - 1}] (columns of idx), got range "
                             f"[{int(last_index.min())}, {int(last_index.max())}]")
        h = self.backbone.hidden_states(idx, attention_mask=attention_mask)  # (B, T, C)
        h_last = h[torch.arange(B, device=idx.device), last_index]  # (B, C)
        return self.head(h_last).squeeze(-1).float()  # (B,)


class EncodedPairs(NamedTuple):
    """Token ids of N pairs, right-padded to a common width L.

    chosen_ids, rejected_ids: (N, L) conversations (``sft.chat_text`` of the
    prompt and the response, as token ids) followed by ``<|pad|>``.
    chosen_last, rejected_last: (N,) the column of each closing ``<|end|>``.
    """

    chosen_ids: torch.Tensor
    chosen_last: torch.Tensor
    rejected_ids: torch.Tensor
    rejected_last: torch.Tensor

    @property
    def num_pairs(self) -> int:
        return self.chosen_ids.shape[0]

    def subset(self, rows) -> EncodedPairs:
        """The pairs at ``rows`` (a slice, a list of indices or a boolean mask)."""
        if isinstance(rows, (list, tuple)):
            rows = torch.as_tensor(rows, dtype=torch.long)
        return EncodedPairs(*(t[rows] for t in self))


def encode_conversations(
    tokenizer: Tokenizer, prompts: Sequence[str], responses: Sequence[str], block_size: int,
    width: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (N, width) of each ``chat_text(prompt, response)`` and its last column.

    ``width`` defaults to the longest conversation. Special-token text inside
    a prompt or response is encoded as plain text (see ``sft.encode_example``).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses")
    rows = [encode_example(tokenizer, q, r)[0] for q, r in zip(prompts, responses)]
    longest = max((len(r) for r in rows), default=1)
    if longest > block_size:
        k = max(range(len(rows)), key=lambda i: len(rows[i]))
        raise ValueError(
            f"conversation {k} is {longest} tokens long, more than block_size={block_size} "
            f"({prompts[k]!r} -> {responses[k][:40]!r}): raise block_size or shorten it")
    width = longest if width is None else width
    if width < longest:
        raise ValueError(f"width={width} is shorter than the longest conversation ({longest})")
    ids = torch.full((len(rows), width), tokenizer.pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    last = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    return ids, last


def encode_pairs(tokenizer: Tokenizer, pairs: Sequence[PreferencePair],
                 block_size: int) -> EncodedPairs:
    """Encode preference pairs for training: see ``EncodedPairs``.

    Chosen and rejected rows share one width (the longest conversation), so a
    batch can stack them into one forward pass. Raises if a conversation is
    longer than ``block_size`` (use the reward model's ``config.block_size``).
    """
    if len(pairs) == 0:
        raise ValueError("pairs is empty: make some with make_pairs")
    prompts = [p.prompt for p in pairs]
    c_ids, c_last = encode_conversations(tokenizer, prompts, [p.chosen for p in pairs],
                                         block_size)
    r_ids, r_last = encode_conversations(tokenizer, prompts, [p.rejected for p in pairs],
                                         block_size)
    width = max(c_ids.shape[1], r_ids.shape[1])
    pad = tokenizer.pad_id
    c_ids = F.pad(c_ids, (0, width - c_ids.shape[1]), value=pad)
    r_ids = F.pad(r_ids, (0, width - r_ids.shape[1]), value=pad)
    return EncodedPairs(c_ids, c_last, r_ids, r_last)


# --- training ---------------------------------------------------------------------------
class PairBatches:
    """Minibatches of pairs for ``train.Trainer``: ``batches(i) -> (ids, last)``.

    ``ids`` (2B, L) holds the B chosen rows on top of their B rejected rows
    (one forward pass scores both), cut to the longest conversation in the
    batch; ``last`` (2B,) the column of each row's last token. Pairs are
    visited in a fresh random order every epoch; batch i is a pure function
    of (seed, i).
    """

    def __init__(self, encoded: EncodedPairs, batch_size: int, seed: int = 0):
        if not isinstance(encoded, EncodedPairs):
            raise TypeError("encoded must be the EncodedPairs that encode_pairs returns")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.encoded, self.batch_size, self.seed = encoded, batch_size, seed
        self._orders: dict[int, list[int]] = {}

    def rows(self, index: int) -> list[int]:
        """Which pairs batch ``index`` holds."""
        n = self.encoded.num_pairs
        out = []
        for s in range(index * self.batch_size, (index + 1) * self.batch_size):
            epoch = s // n
            if epoch not in self._orders:
                order = list(range(n))
                random.Random(f"pairs/{self.seed}/{epoch}").shuffle(order)
                self._orders[epoch] = order
            out.append(self._orders[epoch][s % n])
        return out

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.tensor(self.rows(index), dtype=torch.long)
        e = self.encoded
        last = torch.cat([e.chosen_last[rows], e.rejected_last[rows]])
        width = int(last.max()) + 1
        ids = torch.cat([e.chosen_ids[rows, :width], e.rejected_ids[rows, :width]])
        return ids, last


def pair_loss(model: RewardModel, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Bradley-Terry loss of a ``PairBatches`` batch: chosen rows first, rejected rows second."""
    ids, last = batch
    rewards = model(ids, last_index=last)  # (2B,)
    half = rewards.shape[0] // 2
    return bradley_terry_loss(rewards[:half], rewards[half:])


def train_reward_model(
    model: RewardModel,
    encoded: EncodedPairs,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-4,
    seed: int = 0,
    device: str = "auto",
    weight_decay: float = 0.0,
    eval_fn: Callable[[nn.Module], dict] | None = None,
    eval_every: int = 0,
    callbacks: list[Callback] | None = None,
) -> History:
    """Train ``model`` on ``encoded`` pairs with the Bradley-Terry loss; returns the History.

    This is the course's ``train.Trainer`` (AdamW, 5% warmup, cosine decay to
    10%, gradient clipping at 1) with ``PairBatches`` and ``pair_loss``: the
    same loop that pretrains, only the batches and the loss differ. The loss
    is logged at every step (``history.loss``). Runs are repeatable for a
    fixed ``seed``. ``eval_fn(model) -> dict`` is called every ``eval_every``
    steps and at the end (e.g. held-out ``pair_accuracy``).
    """
    config = TrainConfig(max_steps=steps, lr=lr, weight_decay=weight_decay, device=device,
                         seed=seed, log_every=1, eval_every=eval_every, progress=False)
    trainer = Trainer(model, PairBatches(encoded, batch_size, seed), config, loss_fn=pair_loss,
                      eval_fn=eval_fn, callbacks=callbacks)
    return trainer.fit()


@torch.no_grad()
def last_token_features(model: RewardModel, ids: torch.Tensor, last: torch.Tensor,
                        batch_size: int = 256) -> torch.Tensor:
    """The backbone's final hidden state at each row's last token: (N, n_embd), on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, ids.shape[0], batch_size):
        chunk_last = last[i : i + batch_size].to(device)
        chunk = ids[i : i + batch_size, : int(chunk_last.max()) + 1].to(device)
        h = model.backbone.hidden_states(chunk)
        out.append(h[torch.arange(chunk.shape[0], device=device), chunk_last].float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, model.config.n_embd)


def pair_features(model: RewardModel, encoded: EncodedPairs) -> tuple[torch.Tensor, torch.Tensor]:
    """Last-token features (N, n_embd) of the chosen and of the rejected side of every pair."""
    return (last_token_features(model, encoded.chosen_ids, encoded.chosen_last),
            last_token_features(model, encoded.rejected_ids, encoded.rejected_last))


def fit_head(chosen: torch.Tensor, rejected: torch.Tensor, steps: int = 300, lr: float = 0.05,
             weight_decay: float = 1e-3, init: torch.Tensor | None = None) -> torch.Tensor:
    """Weights w (n_embd,) of a linear reward r = w . features, fitted with the Bradley-Terry
    loss on feature pairs (full batch, Adam): logistic regression on ``chosen - rejected``.

    A bias would cancel in r(chosen) - r(rejected), so there is none.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if chosen.shape != rejected.shape or chosen.ndim != 2 or chosen.shape[0] == 0:
        raise ValueError(f"need two (N, C) feature tensors of one shape, N >= 1; got "
                         f"{tuple(chosen.shape)} and {tuple(rejected.shape)}")
    w = (torch.zeros(chosen.shape[1]) if init is None else init.detach().clone().float())
    w.requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        loss = bradley_terry_loss(chosen @ w, rejected @ w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach()


def train_head_only(model: RewardModel, encoded: EncodedPairs, steps: int = 300,
                    lr: float = 0.05, weight_decay: float = 1e-3) -> float:
    """Fit only the scalar head on a frozen backbone; returns the final training loss.

    The backbone's features at the last token are computed once, so this is
    logistic regression on feature differences (``fit_head``) and takes
    seconds where training the whole reward model takes minutes: cheap
    enough to repeat for many data sizes. The backbone is not changed.
    """
    chosen, rejected = pair_features(model, encoded)
    head = model.head
    w = fit_head(chosen, rejected, steps, lr, weight_decay, init=head.weight[0].cpu())
    with torch.no_grad():
        head.weight.copy_(w[None].to(head.weight.device))
    return float(bradley_terry_loss(chosen @ w, rejected @ w))


# --- evaluation -------------------------------------------------------------------------
@torch.no_grad()
def rewards_of(model: RewardModel, ids: torch.Tensor, last: torch.Tensor,
               batch_size: int = 256) -> torch.Tensor:
    """Rewards (N,) of right-padded rows ``ids`` (N, L), in eval mode, on the CPU."""
    features = last_token_features(model, ids, last, batch_size)
    with torch.no_grad():
        return model.head(features.to(model.head.weight.device)).squeeze(-1).float().cpu()


def score_pairs(model: RewardModel, encoded: EncodedPairs,
                batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen, r_rejected), each (N,): the model's rewards of both sides of every pair."""
    return (rewards_of(model, encoded.chosen_ids, encoded.chosen_last, batch_size),
            rewards_of(model, encoded.rejected_ids, encoded.rejected_last, batch_size))


def pair_accuracy(model: RewardModel, encoded: EncodedPairs, batch_size: int = 256) -> float:
    """The share of pairs the model ranks like the labeller: r_chosen > r_rejected (ties count
    as wrong). 0.5 is chance; ``bayes_accuracy`` is the ceiling on noisy labels."""
    chosen, rejected = score_pairs(model, encoded, batch_size)
    return float((chosen > rejected).float().mean())


def score_responses(model: RewardModel, tokenizer: Tokenizer, prompts: Sequence[str],
                    responses: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Rewards (N,) of ``responses`` to ``prompts`` (questions, without the chat template)."""
    if isinstance(prompts, str) or isinstance(responses, str):
        raise TypeError("prompts and responses must be lists of strings; wrap one in [ ]")
    if len(prompts) == 0:
        return torch.zeros(0)
    ids, last = encode_conversations(tokenizer, prompts, responses, model.config.block_size)
    return rewards_of(model, ids, last, batch_size)


def calibration(margins_pred, labels, bins: int = 10) -> list[tuple[float, float, int]]:
    """Does a predicted P(A preferred) of 0.8 come true 80% of the time?

    margins_pred: (N,) predicted r(A) - r(B); labels: (N,) 1 if A was
    preferred, else 0. Predictions P = sigmoid(margin) are put into ``bins``
    equal-width bins on [0, 1]; for every non-empty bin, returns
    (mean predicted P, observed rate of label 1, count). A calibrated model
    has the first two close.

    For chosen/rejected pairs all labels are 1 by construction; add the
    mirrored pairs to cover both halves:
    ``calibration(torch.cat([m, -m]), torch.cat([ones, zeros]))``.
    """
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    m = torch.as_tensor(margins_pred, dtype=torch.float64).reshape(-1)
    y = torch.as_tensor(labels, dtype=torch.float64).reshape(-1)
    if m.shape != y.shape:
        raise ValueError(f"got {m.numel()} margins but {y.numel()} labels")
    if bool(((y != 0) & (y != 1)).any()):
        raise ValueError("labels must be 0 or 1 (1: the first answer was preferred)")
    p = torch.sigmoid(m)
    which = (p * bins).long().clamp(max=bins - 1)
    table = []
    for k in range(bins):
        sel = which == k
        n = int(sel.sum())
        if n:
            table.append((float(p[sel].mean()), float(y[sel].mean()), n))
    return table


def expected_calibration_error(table: list[tuple[float, float, int]]) -> float:
    """The count-weighted mean gap |predicted - observed| over a ``calibration`` table."""
    total = sum(n for _, _, n in table)
    if total == 0:
        raise ValueError("the calibration table is empty")
    return sum(n * abs(p - rate) for p, rate, n in table) / total
