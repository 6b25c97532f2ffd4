"""Measurements of what data does to a model: regurgitation, misinformation, mixing."""

import math

import pytest
import torch

from llmtrain.core.model import GPT, preset, token_logprobs
from llmtrain.core.train import TrainConfig, Trainer
from llmtrain.course.shared_data import encode_documents
from llmtrain.data.crawl import Canary, FalseFact
from llmtrain.data.effects import (
    FactPreference,
    misinformation,
    mix_tokens,
    mixing_sweep,
    regurgitation,
    share_false,
    value_logprob,
)


def _model(tok, seed=0):
    torch.manual_seed(seed)
    return GPT(preset("nano", vocab_size=tok.vocab_size, block_size=64)).eval()


def test_value_logprob_is_the_sum_of_the_value_tokens(tok):
    model = _model(tok)
    prompt, value = "Anna is a city in", " Linoria"
    ids = tok.encode(prompt + value)
    n = len(ids) - len(tok.encode(prompt))
    with torch.no_grad():
        expected = float(token_logprobs(model, torch.tensor([ids]))[0, -n:].sum())
    assert value_logprob(model, tok, prompt, value) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="adds no tokens"):
        value_logprob(model, tok, prompt, "")


def test_misinformation_compares_the_two_values(tok):
    model = _model(tok)
    facts = [FalseFact("Anna is a city in", " Linoria", " Iasalia", "city"),
             FalseFact("Iasalia is a country whose capital is", " Ormo", " Navikan", "capital")]
    prefs = misinformation(model, tok, facts)
    assert [p.fact for p in prefs] == facts
    for p in prefs:
        assert p.prefers_false == (p.logp_false > p.logp_true)
        assert p.logp_true < 0 and p.logp_false < 0
    assert share_false([FactPreference(facts[0], -1.0, -2.0),
                        FactPreference(facts[1], -3.0, -1.0)]) == 0.5
    with pytest.raises(ValueError):
        share_false([])


def test_regurgitation_counts_verbatim_continuations(tok):
    canaries = [Canary(f"Archive note {n}-0. The motto of the note is: river lamp",
                       " orange silent copper window.", n) for n in (1, 100)]
    # an untrained model reproduces nothing
    assert regurgitation(_model(tok), tok, canaries) == {1: 0.0, 100: 0.0}
    # a model trained on one of them (many times) reproduces it
    text = canaries[1].prompt + canaries[1].continuation
    stream = encode_documents(tok, [text] * 200)
    period = len(tok.encode(text)) + 1  # one copy and its end-of-text token
    torch.manual_seed(0)
    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=64))

    def batches(i):
        w = stream[(i * 7) % period:][:65].repeat(4, 1)
        return w[:, :-1], w[:, 1:]

    Trainer(model, batches, TrainConfig(max_steps=200, lr=5e-3, warmup_frac=0.1,
                                        progress=False, device="cpu")).fit()
    assert regurgitation(model.eval(), tok, canaries)[100] == 1.0


def test_mix_tokens_follows_the_shares():
    domains = {"prose": torch.zeros(5000, dtype=torch.long),
               "code": torch.ones(5000, dtype=torch.long)}
    stream = mix_tokens(domains, {"prose": 0.75, "code": 0.25}, 25_600, block=256)
    assert len(stream) == 25_600
    assert float(stream.float().mean()) == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ValueError, match="sum to 1"):
        mix_tokens(domains, {"prose": 0.5, "code": 0.2}, 1000)
    with pytest.raises(ValueError, match="unknown"):
        mix_tokens(domains, {"maths": 1.0}, 1000)


def test_mixing_sweep_runs_one_model_per_share(tok):
    g = torch.Generator().manual_seed(0)
    prose = torch.randint(0, 100, (4000,), generator=g)
    code = torch.randint(100, 200, (4000,), generator=g)
    seen = []
    results = mixing_sweep({"prose": prose, "code": code},
                           {"prose": prose[:600], "code": code[:600]}, [0.0, 1.0], steps=20,
                           batch_size=8, block_size=32, vocab_size=tok.vocab_size,
                           on_result=seen.append)
    assert [r.code_share for r in results] == [0.0, 1.0] and seen == results
    all_prose, all_code = results
    assert all(math.isfinite(v) for r in results for v in r.loss.values())
    # each model is better on the domain it was trained on
    assert all_prose.loss["prose"] < all_code.loss["prose"]
    assert all_code.loss["code"] < all_prose.loss["code"]
    with pytest.raises(ValueError, match="code_shares"):
        mixing_sweep({"prose": prose, "code": code}, {}, [1.5])
