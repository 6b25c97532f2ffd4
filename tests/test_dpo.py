from __future__ import annotations

import copy

import pytest
import torch

from llmtrain.align.dpo import pair_logprobs, response_logprobs, train_dpo
from llmtrain.align.preferences import PreferencePair
from llmtrain.align.reward_model import PairBatches, encode_pairs
from llmtrain.align.sft import qa_examples
from llmtrain.core.chat import encode_example
from llmtrain.world.fiction import World

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return World.generate(seed=3, n_people=20, n_unseen=2)


def test_response_logprobs_sum_the_answer_tokens_only(tok, nano):
    model = nano(block_size=64)
    q, a = "Where was Kalo Mira born?", "Kalo Mira's place of birth is Orvik."
    ids, labels = encode_example(tok, q, a)
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(x)[0].log_softmax(-1)
        by_hand = sum(logits[t, labels[t]] for t in range(len(ids)) if labels[t] >= 0)
        padded = torch.cat([x, torch.full((1, 5), tok.pad_id)], dim=1)
        got = response_logprobs(model, padded, torch.tensor([len(ids) - 1]), tok.assistant_id)
    assert float(got) == pytest.approx(float(by_hand), abs=1e-4)  # = the SFT loss's targets
    with pytest.raises(ValueError, match="assistant"):
        response_logprobs(model, torch.tensor([[1, 2, 3]]), torch.tensor([2]), tok.assistant_id)


def test_dpo_raises_the_chosen_answers_relative_to_the_reference(tok, world, nano):
    policy = nano(block_size=64)
    reference = copy.deepcopy(policy)
    examples = qa_examples(world)[:8]
    pairs = [PreferencePair(e.question, e.answer, "I don't know.", 1.0, e.person, e.attribute)
             for e in examples]
    enc = encode_pairs(tok, pairs, 64)
    batch = PairBatches(enc, batch_size=8)(0)

    def margin(model):
        with torch.no_grad():
            c, r = pair_logprobs(model, batch, tok.assistant_id)
        return (c - r).mean().item()

    before = margin(policy)
    history = train_dpo(policy, reference, enc, tok.assistant_id, steps=20, beta=0.1,
                        batch_size=8, lr=1e-3, device="cpu")
    assert history.loss[0] == pytest.approx(0.6931, abs=1e-3)  # ln 2 at the reference
    assert history.loss[-1] < history.loss[0]
    assert margin(policy) > before + 1.0
    assert margin(reference) == pytest.approx(before)  # the reference never moves
    with pytest.raises(ValueError, match="beta"):
        train_dpo(policy, reference, enc, tok.assistant_id, steps=1, beta=0)


def test_implicit_rewards_are_zero_at_the_reference_and_rank_pairs_after_training(tok, world, nano):
    from llmtrain.align.dpo import dpo_eval_fn, implicit_rewards

    policy = nano(block_size=64)
    reference = copy.deepcopy(policy)
    examples = qa_examples(world)[:8]
    pairs = [PreferencePair(e.question, e.answer, "I don't know.", 1.0, e.person, e.attribute)
             for e in examples]
    enc = encode_pairs(tok, pairs, 64)
    c, r = implicit_rewards(policy, reference, enc, tok.assistant_id, beta=0.1, batch_size=3)
    assert c.shape == r.shape == (8,) and float(c.abs().max()) == 0 == float(r.abs().max())
    evaluate = dpo_eval_fn(reference, enc, tok.assistant_id, beta=0.1)
    history = train_dpo(policy, reference, enc, tok.assistant_id, steps=15, beta=0.1,
                        batch_size=8, lr=1e-3, device="cpu", eval_fn=evaluate)
    final = history.evals[-1]
    assert final["pair_accuracy"] == 1.0 and final["margin"] > 0
    assert final["chosen"] - final["rejected"] == pytest.approx(final["margin"], abs=1e-5)
    # the cached reference log-probs give the same rewards as the reference model itself
    from llmtrain.align.dpo import drift, side_logprobs

    ref_lp = side_logprobs(reference, enc, tok.assistant_id, 3)
    c1, r1 = implicit_rewards(policy, reference, enc, tok.assistant_id, beta=0.1)
    c2, r2 = implicit_rewards(policy, None, enc, tok.assistant_id, beta=0.1,
                              reference_logprobs=ref_lp)
    assert torch.allclose(c1, c2) and torch.allclose(r1, r2)
    # drift: zero for the reference, |log pi - log pi_ref| averaged over both sides after
    assert drift(reference, enc, tok.assistant_id, ref_lp) == 0.0
    pc, pr = side_logprobs(policy, enc, tok.assistant_id, 8)
    want = float(((pc - ref_lp[0]).abs().mean() + (pr - ref_lp[1]).abs().mean()) / 2)
    assert drift(policy, enc, tok.assistant_id, ref_lp) == pytest.approx(want) and want > 0
    with pytest.raises(ValueError, match="reference model or its log-probs"):
        implicit_rewards(policy, None, enc, tok.assistant_id, beta=0.1)
    # an eval_fn handed the reference log-probs measures exactly what the caching one does
    given = dpo_eval_fn(reference, enc, tok.assistant_id, beta=0.1, reference_logprobs=ref_lp)
    assert given(policy) == pytest.approx(evaluate(policy))
