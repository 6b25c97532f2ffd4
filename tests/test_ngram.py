"""Unigram and bigram counting models: known counts, smoothing, losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmtrain.pretrain.ngram import BigramLM, UnigramLM, best_k


def test_unigram_probabilities_are_smoothed_frequencies():
    tokens = torch.tensor([0, 1, 1, 2, 1, 0])  # counts 2, 3, 1, 0 over V = 4
    m = UnigramLM(4, k=1.0).fit(tokens)
    expected = torch.tensor([3, 4, 2, 1], dtype=torch.float64) / 10  # (c + 1) / (6 + 4)
    assert torch.allclose(m.next_token_probs(), expected)
    assert torch.allclose(m.next_token_probs([3, 2]), expected)  # context is ignored
    assert m.next_token_probs().sum() == pytest.approx(1.0)


def test_bigram_probabilities_follow_the_previous_token():
    tokens = torch.tensor([0, 1, 0, 1, 2])  # pairs (0,1) (1,0) (0,1) (1,2)
    m = BigramLM(3, k=1.0).fit(tokens)
    after0 = m.next_token_probs([2, 0])
    assert after0.tolist() == pytest.approx([1 / 5, 3 / 5, 1 / 5])  # c(0, .) = 0 2 0
    after2 = m.next_token_probs([2])  # 2 was never followed by anything: uniform
    assert after2.tolist() == pytest.approx([1 / 3] * 3)
    assert torch.allclose(m.log_probs.exp().sum(dim=1), torch.ones(3, dtype=torch.float64))


def test_losses_score_every_token_after_the_first():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 50, (5_000,), generator=g)
    test = torch.randint(0, 50, (300,), generator=g)
    for m in (UnigramLM(50, 0.5).fit(train), BigramLM(50, 0.1).fit(train)):
        per_token = m.token_losses(test)
        assert per_token.shape == (299,)
        manual = [-math.log(float(m.next_token_probs(test[: i + 1])[test[i + 1]]))
                  for i in range(299)]
        assert m.loss(test) == pytest.approx(sum(manual) / 299, rel=1e-9)


def test_bigram_loss_equals_torch_cross_entropy_on_its_log_probs():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 20, (2_000,), generator=g)
    m = BigramLM(20, 0.3).fit(tokens)
    logits = m.log_probs[tokens[:-1]]  # log-probabilities are valid logits
    assert m.loss(tokens) == pytest.approx(float(F.cross_entropy(logits, tokens[1:])), rel=1e-9)


def test_known_limits_uniform_noise_and_a_deterministic_cycle():
    g = torch.Generator().manual_seed(2)
    noise = torch.randint(0, 64, (200_000,), generator=g)
    assert UnigramLM(64).fit(noise).loss(noise) == pytest.approx(math.log(64), abs=0.01)
    cycle = torch.arange(10).repeat(1_000)  # 0 1 2 ... 9 0 1 ...: the next token is certain
    bigram, unigram = BigramLM(10, 1e-4).fit(cycle), UnigramLM(10).fit(cycle)
    assert bigram.loss(cycle) < 0.01 < math.log(10) - 0.01 < unigram.loss(cycle)


def test_bigram_beats_unigram_on_text_with_structure():
    sentence = "the cat sat on the mat and the dog sat on it. "
    text = torch.tensor([ord(c) % 128 for c in sentence * 50])
    assert BigramLM(128, 0.01).fit(text).loss(text) < UnigramLM(128, 0.01).fit(text).loss(text)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="k"):
        BigramLM(10, k=0)
    with pytest.raises(ValueError, match="vocab_size"):
        UnigramLM(0)
    with pytest.raises(RuntimeError, match="not fitted"):
        BigramLM(10).loss([1, 2, 3])
    m = BigramLM(10).fit([1, 2, 3])
    with pytest.raises(ValueError, match="token ids"):
        m.loss([1, 12])
    with pytest.raises(ValueError, match="at least 2"):
        m.loss([1])


def test_best_k_picks_the_lowest_validation_loss():
    g = torch.Generator().manual_seed(3)
    data = torch.randint(0, 30, (4_000,), generator=g)
    k, losses = best_k(BigramLM, data[:3_000], data[3_000:], 30, ks=(10.0, 1.0, 0.01))
    assert losses[k] == min(losses.values()) and set(losses) == {10.0, 1.0, 0.01}
    # data with no structure: heavy smoothing (close to uniform) wins
    assert k == 10.0


def test_tables_at_chapter_scale_count_every_pair_once():
    # 130k tokens over 2,048 ids, the size chapter 01 fits (its speed: benchmarks/bench_ngram.py)
    tokens = torch.randint(0, 2048, (130_000,), generator=torch.Generator().manual_seed(4))
    uni, bi = UnigramLM(2048).fit(tokens), BigramLM(2048, 0.01).fit(tokens)
    assert uni.counts.sum() == 130_000 and bi.counts.sum() == 129_999
    ids = tokens.tolist()
    pair = (ids[500], ids[501])
    assert bi.counts[pair] == sum(1 for p in zip(ids, ids[1:]) if p == pair)
    assert torch.allclose(bi.log_probs.exp().sum(1), torch.ones(2048, dtype=torch.float64))
    expected = -bi.log_probs[tokens[:-1], tokens[1:]].mean()
    assert bi.loss(tokens) == pytest.approx(float(expected))
    # on uniform random ids nothing beats ln V by much: the bigram table only memorises noise
    assert uni.loss(tokens) == pytest.approx(math.log(2048), abs=0.01)
