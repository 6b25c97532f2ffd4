"""Best-of-n: the KL bound, the order-statistics weights and the expected best of n."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from llmtrain.align.bestofn import (
    best_of_n_curve,
    best_of_n_weights,
    expected_best_of_n,
    kl_best_of_n,
    sample_candidates,
)
from llmtrain.align.sft import qa_examples
from llmtrain.core.model import GPT, preset
from llmtrain.world.fiction import World


def test_kl_of_best_of_n():
    assert kl_best_of_n(1) == 0.0
    assert kl_best_of_n(2) == pytest.approx(math.log(2) - 0.5)
    assert kl_best_of_n(64) == pytest.approx(math.log(64) - 63 / 64)
    with pytest.raises(ValueError, match="n must be"):
        kl_best_of_n(0)


@pytest.mark.parametrize("N,n", [(1, 1), (5, 1), (5, 5), (10, 3), (1000, 64)])
def test_weights_are_a_distribution_over_ranks(N, n):
    w = best_of_n_weights(N, n)
    assert w.shape == (N,) and float(w.sum()) == pytest.approx(1.0)
    assert bool((w[: n - 1] == 0).all())  # the n-1 lowest can never be the best of n
    if n == 1:
        torch.testing.assert_close(w, torch.full((N,), 1 / N, dtype=torch.float64))
    if n == N:
        assert float(w[-1]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sample at least n"):
        best_of_n_weights(3, 4)


def test_expected_best_of_n_equals_the_average_over_every_subset():
    torch.manual_seed(0)
    proxy, gold = torch.randn(4, 7), torch.randn(4, 7)
    for n in (1, 2, 3, 7):
        subsets = list(itertools.combinations(range(7), n))
        want_p = want_g = 0.0
        for row in range(4):
            for s in subsets:
                best = max(s, key=lambda i: proxy[row, i].item())
                want_p += proxy[row, best].item()
                want_g += gold[row, best].item()
        want_p, want_g = want_p / (4 * len(subsets)), want_g / (4 * len(subsets))
        p, g = expected_best_of_n(proxy, gold, n)
        assert p == pytest.approx(want_p) and g == pytest.approx(want_g)


def test_the_curve_rises_in_proxy_and_reports_the_kl():
    torch.manual_seed(1)
    proxy = torch.randn(50, 16)
    gold = -proxy ** 2  # the judge likes moderate proxy scores best: over-optimisation
    curve = best_of_n_curve(proxy, gold, [1, 2, 4, 16])
    assert curve["proxy"] == sorted(curve["proxy"])
    assert curve["gold"][-1] < curve["gold"][0]
    assert curve["kl"] == [kl_best_of_n(n) for n in (1, 2, 4, 16)]
    with pytest.raises(ValueError, match="prompts, samples"):
        expected_best_of_n(proxy[0], gold[0], 1)


def test_sample_candidates_gives_n_responses_per_question(tok):
    torch.manual_seed(0)
    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=48)).eval()
    examples = qa_examples(World.generate(seed=3, n_people=10, n_unseen=1))[:3]
    out = sample_candidates(model, tok, examples, n=4, max_new_tokens=5, seed=0)
    assert len(out) == 3 and all(len(c) == 4 for c in out)
    assert len({t for c in out for t in c}) > 1  # sampled, not greedy
    assert out == sample_candidates(model, tok, examples, n=4, max_new_tokens=5, seed=0)
