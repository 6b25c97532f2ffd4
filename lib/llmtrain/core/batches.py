"""From a stream of tokens to training batches, and back to a held-out loss.

Language-model training reads fixed-length windows of a long token stream:
the input is ``tokens[i : i + T]`` and the target is the same window shifted
by one, ``tokens[i + 1 : i + T + 1]``: at every position, the next token.

Batches are a pure function of their index (``batches(i)``), drawn with a
generator seeded by (seed, i). That makes training reproducible, lets a run
resume exactly where it stopped, and lets data-parallel workers read
disjoint batches (worker r of W takes indices r, r + W, r + 2W, ...).
"""

from __future__ import annotations

import math

import torch

from .losses import next_token_loss


def to_tensor(tokens) -> torch.Tensor:
    """A 1-D int64 tensor of token ids from a list, array or tensor."""
    t = torch.as_tensor(tokens, dtype=torch.long).flatten()
    return t


class LMBatches:
    """Random windows of a token stream: ``batches(i) -> (x, y)``, each (batch_size, block_size).

    Windows start at uniformly random offsets, so every epoch sees the text
    cut at different places.
    """

    def __init__(self, tokens, block_size: int, batch_size: int, seed: int = 0):
        self.tokens = to_tensor(tokens)
        if block_size < 1 or batch_size < 1:
            raise ValueError("block_size and batch_size must be positive")
        if len(self.tokens) < block_size + 2:
            raise ValueError(
                f"the token stream has {len(self.tokens)} tokens, too few for windows of "
                f"{block_size}: use more text or a smaller block_size"
            )
        self.block_size, self.batch_size, self.seed = block_size, batch_size, seed

    @property
    def tokens_per_batch(self) -> int:
        return self.block_size * self.batch_size

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        starts = torch.randint(0, len(self.tokens) - self.block_size - 1, (self.batch_size,),
                               generator=g)
        offsets = torch.arange(self.block_size + 1)
        windows = self.tokens[starts[:, None] + offsets]  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]


def heldout_windows(tokens, block_size: int, max_windows: int | None = None) -> torch.Tensor:
    """Non-overlapping windows of ``block_size + 1`` tokens, in order: (N, T + 1)."""
    t = to_tensor(tokens)
    n = (len(t) - 1) // block_size
    if max_windows is not None:
        n = min(n, max_windows)
    if n < 1:
        raise ValueError(f"{len(t)} tokens are too few for one window of {block_size}")
    starts = torch.arange(n) * block_size
    return t[starts[:, None] + torch.arange(block_size + 1)]


@torch.no_grad()
def evaluate_loss(
    model,
    tokens,
    block_size: int | None = None,
    batch_size: int = 32,
    max_windows: int | None = 64,
    device: torch.device | str | None = None,
) -> float:
    """Mean next-token loss (nats per token) of ``model`` on a held-out token stream."""
    block_size = block_size or model.config.block_size
    device = device or next(model.parameters()).device
    windows = heldout_windows(tokens, block_size, max_windows)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        w = windows[i : i + batch_size].to(device)
        loss = next_token_loss(model(w[:, :-1]), w[:, 1:])
        total += float(loss) * w[:, 1:].numel()
        count += w[:, 1:].numel()
    model.train(was_training)
    return total / count


def bits_per_byte(loss_nats_per_token: float, n_tokens: int, n_bytes: int) -> float:
    """Convert a loss per token into the code length per byte of the original text."""
    return loss_nats_per_token * n_tokens / n_bytes / math.log(2)
