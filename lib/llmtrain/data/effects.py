"""What the training data does to the model: memorised copies, learned falsehoods, mixtures.

Three measurements for chapter 05, each a plain function of a trained model:

- ``regurgitation``: prompt the model with the start of each planted canary and
  check whether greedy decoding reproduces the rest word for word, per number
  of copies in the training data.
- ``misinformation``: for facts the crawl's campaign got wrong, does the model
  prefer the false value to the true one? (Compared by the log-probability of
  each value after the same prompt.)
- ``mixing_sweep``: train small models on mixtures of documentation prose and
  code with the same token budget, and measure the loss on held-out text of
  each kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..core.batches import LMBatches, evaluate_loss
from ..core.generation import complete
from ..core.model import GPT, preset, token_logprobs
from ..core.train import TrainConfig, Trainer
from .crawl import Canary, FalseFact, messy_crawl


def clean_heldout_texts(world, n_pages: int = 400, seed: int = 99) -> list[str]:
    """Clean pages from a crawl the models never saw: world pages, prose and code."""
    crawl = messy_crawl(world, n_pages, seed=seed, canaries_per_level=0)
    return [p.text for p in crawl.pages if p.label == "clean" and p.original is None]


@torch.no_grad()
def regurgitation(model: GPT, tokenizer, canaries: Sequence[Canary]) -> dict[int, float]:
    """Share of canaries, per number of copies, whose continuation comes out verbatim."""
    by_copies: dict[int, list[Canary]] = {}
    for c in canaries:
        by_copies.setdefault(c.copies, []).append(c)
    rates = {}
    for copies in sorted(by_copies):
        group = by_copies[copies]
        n_new = max(len(tokenizer.encode(c.continuation)) for c in group) + 2
        outs = complete(model, tokenizer, [c.prompt for c in group], max_new_tokens=n_new,
                        stop=".")
        hits = [o.strip().rstrip(".") == c.continuation.strip().rstrip(".")
                for o, c in zip(outs, group)]
        rates[copies] = sum(hits) / len(group)
    return rates


@torch.no_grad()
def value_logprob(model: GPT, tokenizer, prompt: str, value: str) -> float:
    """log p(value | prompt) in nats, summed over the value's tokens."""
    ids = tokenizer.encode(prompt + value)
    n = len(ids) - len(tokenizer.encode(prompt))
    if n < 1:
        raise ValueError(f"value {value!r} adds no tokens to the prompt")
    device = next(model.parameters()).device
    lp = token_logprobs(model, torch.tensor([ids], device=device))
    return float(lp[0, -n:].sum())


@dataclass(frozen=True)
class FactPreference:
    fact: FalseFact
    logp_true: float
    logp_false: float

    @property
    def prefers_false(self) -> bool:
        return self.logp_false > self.logp_true


def misinformation(model: GPT, tokenizer, facts: Sequence[FalseFact]) -> list[FactPreference]:
    """For each fact, the log-probabilities the model gives the true and the false value."""
    model.eval()
    return [FactPreference(f, value_logprob(model, tokenizer, f.prompt, f.true),
                           value_logprob(model, tokenizer, f.prompt, f.false)) for f in facts]


def share_false(prefs: Sequence[FactPreference]) -> float:
    """Share of facts where the model prefers the false value."""
    if not prefs:
        raise ValueError("no facts to score")
    return sum(p.prefers_false for p in prefs) / len(prefs)


# --- data mixing --------------------------------------------------------------------
@dataclass
class MixResult:
    code_share: float
    loss: dict[str, float]  # held-out loss per domain ("prose", "code")
    seconds: float


def mix_tokens(domains: dict[str, torch.Tensor], shares: dict[str, float], n_tokens: int,
               block: int = 256, seed: int = 0) -> torch.Tensor:
    """A stream of ``n_tokens`` whose pieces come from each domain in the given shares.

    The stream is built from blocks of ``block`` tokens cut at random places of
    each domain's training tokens, shuffled together.
    """
    if set(shares) - set(domains):
        raise ValueError(f"shares name unknown domains {sorted(set(shares) - set(domains))}")
    if any(s < 0 for s in shares.values()) or abs(sum(shares.values()) - 1) > 1e-6:
        raise ValueError(f"shares must be >= 0 and sum to 1, got {shares}")
    g = torch.Generator().manual_seed(seed)
    n_blocks = max(1, n_tokens // block)
    counts = {k: round(s * n_blocks) for k, s in shares.items()}
    pieces = []
    for name, count in counts.items():
        t = domains[name]
        if count and len(t) <= block:
            raise ValueError(f"domain {name!r} has too few tokens ({len(t)}) for blocks of {block}")
        starts = torch.randint(0, len(t) - block, (count,), generator=g)
        pieces += [t[s:s + block] for s in starts.tolist()]
    order = torch.randperm(len(pieces), generator=g)
    return torch.cat([pieces[i] for i in order.tolist()])


def mixing_sweep(train: dict[str, torch.Tensor], heldout: dict[str, torch.Tensor],
                 code_shares: Sequence[float], steps: int = 120, batch_size: int = 16,
                 block_size: int = 64, model: str = "nano", lr: float = 3e-3,
                 vocab_size: int = 2048, seed: int = 0, device: str = "cpu",
                 on_result=None) -> list[MixResult]:
    """Train one model per code share (same steps, same tokens) and measure each domain.

    ``train`` and ``heldout`` map "prose" and "code" to token streams.
    ``on_result(result)`` is called after each model, for live plots.
    """
    import time

    if not code_shares or any(not 0 <= s <= 1 for s in code_shares):
        raise ValueError(f"code_shares must be numbers in [0, 1], got {list(code_shares)}")
    results = []
    n_tokens = steps * batch_size * block_size
    for share in code_shares:
        stream = mix_tokens(train, {"prose": 1 - share, "code": share}, n_tokens + block_size,
                            seed=seed)
        torch.manual_seed(seed)
        net = GPT(preset(model, vocab_size=vocab_size, block_size=block_size))
        cfg = TrainConfig(max_steps=steps, lr=lr, device=device, seed=seed, progress=False,
                          log_every=max(1, steps // 10))
        start = time.perf_counter()
        Trainer(net, LMBatches(stream, block_size, batch_size, seed=seed), cfg).fit()
        loss = {k: evaluate_loss(net, v, block_size, max_windows=256) for k, v in heldout.items()}
        results.append(MixResult(share, loss, time.perf_counter() - start))
        if on_result is not None:
            on_result(results[-1])
    return results
