"""Best-of-n sampling: the simplest way to optimise against a reward model.

Sample n responses from the policy, keep the one the reward model scores
highest. No training at all, yet it is an optimiser: the larger n, the
harder it pushes on the reward model, and the further the chosen responses
drift from what the policy would normally say. The distribution of the
best of n is at most

    KL(best-of-n || policy) = log n - (n - 1) / n   nats

away from the policy (Stiennon et al., 2020; the bound is exact when no two
samples tie), which lets best-of-n and PPO share one x-axis (Gao et al.,
2022, "Scaling laws for reward model overoptimization").

Sampling N responses once gives the expected outcome of best-of-n for every
n <= N without resampling: among N draws sorted by reward, the k-th lowest
is the best of a random n-subset with probability C(k - 1, n - 1) / C(N, n)
(``best_of_n_weights``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..core.chat import chat_prompt
from ..core.generation import complete
from ..core.tokenizer import Tokenizer
from ..world.answers import Example


def kl_best_of_n(n: int) -> float:
    """The KL bound of best-of-n against the policy it samples from: log n - (n - 1) / n."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1, got {n!r}")
    return math.log(n) - (n - 1) / n


def best_of_n_weights(N: int, n: int) -> torch.Tensor:
    """P(the k-th lowest of N draws is the best of a random n-subset), k = 1..N: (N,).

    C(k - 1, n - 1) / C(N, n), computed with log-gamma so that N = 1000 is fine.
    The weights sum to 1; for n = 1 they are uniform, for n = N all mass is
    on the highest draw.
    """
    if not 1 <= n <= N:
        raise ValueError(f"need 1 <= n <= N, got n={n}, N={N}: sample at least n responses")
    k = torch.arange(1, N + 1, dtype=torch.float64)

    def log_comb(a, b):
        return torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma(a - b + 1)

    f64 = dict(dtype=torch.float64)
    logw = torch.where(k >= n, log_comb(k - 1, torch.tensor(n - 1.0, **f64)), -torch.inf)
    logw = logw - log_comb(torch.tensor(float(N), **f64), torch.tensor(float(n), **f64))
    return logw.exp()


def expected_best_of_n(proxy: torch.Tensor, gold: torch.Tensor, n: int
                       ) -> tuple[float, float]:
    """Expected (proxy, gold) reward of best-of-n, from N >= n scored samples per prompt.

    proxy, gold: (P, N) the reward model's and the judge's scores of N samples
    for each of P prompts. The best of n is chosen by ``proxy``; ties are broken
    by sample order. Exact in expectation over random n-subsets of the N samples.
    """
    if proxy.shape != gold.shape or proxy.ndim != 2:
        raise ValueError(f"proxy and gold must both be (prompts, samples), got "
                         f"{tuple(proxy.shape)} and {tuple(gold.shape)}")
    w = best_of_n_weights(proxy.shape[1], n)
    order = torch.argsort(proxy, dim=1, stable=True)  # ascending: rank k - 1
    p_sorted = proxy.gather(1, order).double()
    g_sorted = gold.gather(1, order).double()
    return float((p_sorted @ w).mean()), float((g_sorted @ w).mean())


def sample_candidates(model, tokenizer: Tokenizer, examples: Sequence[Example], n: int,
                      temperature: float = 1.0, max_new_tokens: int = 16, seed: int = 0,
                      batch_size: int = 256) -> list[list[str]]:
    """``n`` sampled responses to each example's question: a list of n strings per example."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1, got {n!r}")
    prompts = [chat_prompt(e.question) for e in examples for _ in range(n)]
    texts = complete(model, tokenizer, prompts, max_new_tokens, temperature=temperature,
                     stop_tokens=[tokenizer.end_id, tokenizer.eot_id], seed=seed,
                     batch_size=batch_size)
    texts = [t.strip() for t in texts]
    return [texts[i * n:(i + 1) * n] for i in range(len(examples))]


def best_of_n_curve(proxy: torch.Tensor, gold: torch.Tensor, ns: Sequence[int]) -> dict:
    """{"n", "kl", "proxy", "gold"}: lists over ``ns``, from (P, N) scores (see above)."""
    out = {"n": [], "kl": [], "proxy": [], "gold": []}
    for n in ns:
        p, g = expected_best_of_n(proxy, gold, n)
        out["n"].append(n)
        out["kl"].append(kl_best_of_n(n))
        out["proxy"].append(p)
        out["gold"].append(g)
    return out
