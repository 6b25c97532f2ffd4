"""Counting baselines: unigram and bigram language models over token ids.

Before a neural network, the simplest next-token predictors just count.
A **unigram** model ignores the context and predicts every token with its
frequency in the training text; a **bigram** model looks at the one token
before and predicts with the frequency of each follower. Both are language
models in the full sense: they give a probability to every token of the
vocabulary at every position, so they have a cross-entropy loss that can be
put next to a GPT's.

Tokens that never occurred (or never after a given token) would get
probability 0 and an infinite loss, so counts are **add-k smoothed**:
every count gets a pseudo-count ``k`` before normalising,

    unigram:  p(w)     = (c(w) + k) / (N + k V)
    bigram:   p(w | v) = (c(v, w) + k) / (c(v) + k V)

where ``c(v)`` counts the times ``v`` was followed by any token. ``k = 1`` is
Laplace's rule; a bigram table over 2,048 tokens does better with a small
``k`` (``best_k`` picks one on held-out text).

``loss(tokens)`` scores the same targets as a GPT on a token stream: every
token after the first, ``tokens[1:]``, in nats per token.
"""

from __future__ import annotations

import math

import torch

from ..core.batches import to_tensor


class _CountingLM:
    """What unigram and bigram models share: fitting checks and the loss."""

    def __init__(self, vocab_size: int, k: float = 1.0):
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
        if not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0):
            raise ValueError(f"k (the add-k pseudo-count) must be a number > 0, got {k!r}")
        self.vocab_size, self.k = vocab_size, float(k)
        self.n_fit_tokens = 0

    def _check(self, tokens, min_len: int) -> torch.Tensor:
        t = to_tensor(tokens)
        if len(t) < min_len:
            raise ValueError(f"need at least {min_len} tokens, got {len(t)}")
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= self.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.vocab_size}); got range "
                             f"[{int(t.min())}, {int(t.max())}]")
        return t

    def _need_fit(self):
        if not self.n_fit_tokens:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call .fit(tokens)")

    def token_losses(self, tokens) -> torch.Tensor:
        """-ln p of each of ``tokens[1:]`` given what came before: (N - 1,) nats."""
        raise NotImplementedError

    def loss(self, tokens) -> float:
        """Mean cross-entropy on ``tokens[1:]``, in nats per token."""
        return float(self.token_losses(tokens).mean())


class UnigramLM(_CountingLM):
    """p(next token) = its smoothed frequency in the training text; the context is ignored."""

    def fit(self, tokens) -> UnigramLM:
        t = self._check(tokens, 1)
        self.counts = torch.bincount(t, minlength=self.vocab_size).double()  # (V,)
        self.n_fit_tokens = len(t)
        self.normalise()
        return self

    def normalise(self) -> None:
        """Counts -> smoothed probabilities with the current ``k``."""
        self.probs = (self.counts + self.k) / (self.counts.sum() + self.k * self.vocab_size)
        self.log_probs = self.probs.log()

    def next_token_probs(self, context=()) -> torch.Tensor:
        """(V,) probabilities of the next token; the same whatever the context."""
        self._need_fit()
        return self.probs.clone()

    def token_losses(self, tokens) -> torch.Tensor:
        self._need_fit()
        t = self._check(tokens, 2)
        return -self.log_probs[t[1:]]


class BigramLM(_CountingLM):
    """p(next token | previous token) from a V x V table of counts."""

    def fit(self, tokens) -> BigramLM:
        t = self._check(tokens, 2)
        V = self.vocab_size
        pairs = t[:-1] * V + t[1:]  # one id per (previous, next) pair
        self.counts = torch.bincount(pairs, minlength=V * V).view(V, V).double()  # (V, V)
        self.n_fit_tokens = len(t)
        self.normalise()
        return self

    def normalise(self) -> None:
        """Counts -> smoothed probabilities with the current ``k`` (row v: p(. | v))."""
        row = self.counts.sum(dim=1, keepdim=True)  # c(v): times v was followed by anything
        self.log_probs = ((self.counts + self.k) / (row + self.k * self.vocab_size)).log()

    def next_token_probs(self, context) -> torch.Tensor:
        """(V,) probabilities of the token after ``context`` (only its last token counts)."""
        self._need_fit()
        ctx = self._check(context, 1)
        return self.log_probs[int(ctx[-1])].exp()

    def token_losses(self, tokens) -> torch.Tensor:
        self._need_fit()
        t = self._check(tokens, 2)
        return -self.log_probs[t[:-1], t[1:]]


def best_k(model_class, train_tokens, val_tokens, vocab_size: int,
           ks=(1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5)) -> tuple[float, dict[float, float]]:
    """The pseudo-count with the lowest loss on ``val_tokens``, and every k's loss.

    Counts do not depend on k, so the table is built once and re-normalised.
    """
    if not ks:
        raise ValueError("give at least one k")
    losses = {}
    model = model_class(vocab_size, ks[0]).fit(train_tokens)
    for k in ks:
        model.k = float(k)
        model.normalise()
        losses[float(k)] = model.loss(val_tokens)
    best = min(losses, key=losses.get)
    return best, losses
