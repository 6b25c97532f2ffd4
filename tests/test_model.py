from __future__ import annotations

import pytest
import torch

from llmtrain.core.model import GPT, GPTConfig, preset, sample_next, token_logprobs


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPT(preset("nano", vocab_size=61, block_size=24)).eval()


def test_shapes_and_weight_tying(model):
    x = torch.randint(0, 61, (3, 10))
    assert model(x).shape == (3, 10, 61)
    assert model.lm_head.weight is model.wte.weight
    n = model.num_params()
    assert n == sum(p.numel() for p in model.parameters())
    assert model.num_params(non_embedding=True) == n - 61 * 64 - 24 * 64


def test_causal_future_tokens_do_not_change_the_past(model):
    x = torch.randint(0, 61, (2, 12))
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % 61
    torch.testing.assert_close(model(x)[:, :8], model(y)[:, :8])


def test_kv_cache_matches_full_recomputation(model):
    x = torch.randint(0, 61, (4, 5))
    a = model.generate(x, 12, temperature=0, use_cache=True)
    b = model.generate(x, 12, temperature=0, use_cache=False)
    assert torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = model.generate(x, 12, temperature=1.0, top_k=10, generator=g1, use_cache=True)
    b = model.generate(x, 12, temperature=1.0, top_k=10, generator=g2, use_cache=False)
    assert torch.equal(a, b)


@pytest.mark.parametrize("with_mask", [
    True,
    False,  # a bug until the mask was built for one new token too (GPT._trunk)
])
def test_one_cached_step_matches_full_recomputation(model, with_mask):
    # chapter 00's write_cached takes one step like this, with the mask
    x = torch.randint(0, 61, (2, 10))
    _, cache = model(x[:, :-1], return_kv=True)
    mask = torch.ones_like(x) if with_mask else None
    step = model(x[:, -1:], past_kv=cache, attention_mask=mask)
    torch.testing.assert_close(step[:, -1], model(x)[:, -1])


def test_left_padding_gives_the_same_answers(model):
    short = torch.randint(0, 61, (1, 4))
    long = torch.randint(0, 61, (1, 7))
    batch = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], 1), long])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [1] * 7])
    out = model.generate(batch, 6, temperature=0, attention_mask=mask)
    assert torch.equal(out[0, 3:], model.generate(short, 6, temperature=0)[0])
    assert torch.equal(out[1], model.generate(long, 6, temperature=0)[0])
    torch.testing.assert_close(model(batch, attention_mask=mask)[0, 3:], model(short)[0],
                               atol=1e-5, rtol=1e-5)


def test_stop_tokens_and_padding(model):
    x = torch.randint(0, 61, (2, 3))
    greedy = model.generate(x, 8, temperature=0)
    stop = int(greedy[0, 4])  # the second generated token of row 0
    out = model.generate(x, 8, temperature=0, stop_tokens=[stop], pad_id=60)
    first = (out[0, 3:] == stop).nonzero()[0, 0].item() + 3
    assert (out[0, first + 1 :] == 60).all()


def test_generation_longer_than_context_slides_the_window(model):
    out = model.generate(torch.zeros(1, 20, dtype=torch.long), 10, temperature=0)
    assert out.shape == (1, 30)


def test_top_k_and_top_p_restrict_the_candidates():
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.0, -1.0]]).repeat(2000, 1)
    g = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, 1.0, top_k=2, generator=g).tolist()) == {0, 1}
    p = logits[0].softmax(-1)
    assert p[0] < 0.9 < p[0] + p[1]
    assert set(sample_next(logits, 1.0, top_p=0.9, generator=g).tolist()) == {0, 1}
    assert set(sample_next(logits, 1.0, top_p=0.5, generator=g).tolist()) == {0}
    assert (sample_next(logits, 0.0) == 0).all()


def test_token_logprobs_are_log_softmax_of_the_targets(model):
    x = torch.randint(0, 61, (2, 9))
    lp = token_logprobs(model, x)
    manual = torch.log_softmax(model(x)[0, 2], -1)[x[0, 3]]
    torch.testing.assert_close(lp[0, 2], manual)
    assert lp.shape == (2, 8) and (lp <= 0).all()


@pytest.mark.parametrize("bad", [dict(n_embd=100, n_head=3), dict(vocab_size=0),
                                 dict(dropout=1.0), dict(n_layer=2.5)])
def test_bad_configs_are_rejected_with_a_message(bad):
    with pytest.raises(ValueError, match="must"):
        GPTConfig(**bad)


def test_clear_errors_for_bad_inputs(model):
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 25, dtype=torch.long))
    with pytest.raises(ValueError, match="another tokenizer"):
        model(torch.full((1, 3), 61))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 3, temperature=-1)


def test_presets_reach_gpt2_size():
    m = GPT(preset("gpt2"))
    assert 120e6 < m.num_params() < 130e6  # GPT-2 small: 124M with a 50,257 vocabulary
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
