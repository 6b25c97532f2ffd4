from __future__ import annotations

import copy

import pytest
import torch

from llmtrain.dpo import pair_logprobs, response_logprobs, train_dpo
from llmtrain.model import GPT, preset
from llmtrain.reward import PairBatches, PreferencePair, encode_pairs
from llmtrain.sft import encode_example, qa_examples
from llmtrain.world import World

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return World.generate(seed=3, n_people=20, n_unseen=2)


def _nano(tok):
    torch.manual_seed(0)
    return GPT(preset("nano", vocab_size=tok.vocab_size, block_size=64)).eval()


def test_response_logprobs_sum_the_answer_tokens_only(tok):
    model = _nano(tok)
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


def test_dpo_raises_the_chosen_answers_relative_to_the_reference(tok, world):
    policy = _nano(tok)
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
