"""alignment: DPO pairs from the policy's own samples (online_pairs), and run_dpo."""

from __future__ import annotations

import pytest
import torch

from llmtrain.align import policy_runs, preferences, reward_model
from llmtrain.course import checkpoints, shared_data
from llmtrain.world import fiction


def _by_length(examples, responses):
    return torch.tensor([float(len(r)) for r in responses])


def test_online_pairs_put_the_best_scored_sample_against_the_worst(one_thread, tok):
    world = fiction.course_world()
    examples = policy_runs.rl_prompts(world)[:12]
    policy = checkpoints.load("sft")
    pairs = policy_runs.online_pairs(policy, _by_length, tok, examples, samples=4, seed=3,
                                   min_gap=2.0)
    assert 0 < len(pairs) <= len(examples)
    answers = preferences.sample_answers(policy, tok, examples, n=4, seed=3)
    by_question = {e.question: row for e, row in zip(examples, answers)}
    for p in pairs:
        row = by_question[p.prompt]
        assert p.chosen == max(row, key=len) and p.rejected == min(row, key=len)
        assert p.margin_gold == pytest.approx(len(p.chosen) - len(p.rejected))
        assert p.margin_gold > 2.0
    # a larger gap keeps fewer pairs; the same seed gives the same pairs
    fewer = policy_runs.online_pairs(policy, _by_length, tok, examples, samples=4, seed=3,
                                   min_gap=10.0)
    assert len(fewer) <= len(pairs)
    again = policy_runs.online_pairs(policy, _by_length, tok, examples, samples=4, seed=3,
                                   min_gap=2.0)
    assert [(p.chosen, p.rejected) for p in again] == [(p.chosen, p.rejected) for p in pairs]


def test_online_pairs_reject_bad_arguments(tok):
    policy = checkpoints.load("sft")
    examples = policy_runs.rl_prompts(fiction.course_world())[:2]
    with pytest.raises(ValueError, match="samples must be >= 2"):
        policy_runs.online_pairs(policy, _by_length, tok, examples, samples=1)
    with pytest.raises(ValueError, match="min_gap"):
        policy_runs.online_pairs(policy, _by_length, tok, examples, min_gap=-1)


def test_run_dpo_takes_pairs_or_the_same_pairs_encoded(one_thread, tok):
    import copy

    pairs, _ = shared_data.preference_data("reward")
    pairs = pairs[:64]
    start = checkpoints.load("sft")
    a, b = copy.deepcopy(start), copy.deepcopy(start)
    ha = policy_runs.run_dpo(a, tok, pairs, steps=2, beta=0.1, lr=1e-4, batch_size=8,
                           device="cpu")
    encoded = reward_model.encode_pairs(tok, pairs, start.config.block_size)
    hb = policy_runs.run_dpo(b, tok, encoded, steps=2, beta=0.1, lr=1e-4, batch_size=8,
                           device="cpu")
    assert ha.loss == pytest.approx(hb.loss)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(next(a.parameters()), next(start.parameters()))
