"""PPO: the pieces (value loss, whitening, entropy, KL estimates, rollouts) and the loop."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from llmtrain.align import ppo
from llmtrain.align.sft import qa_examples
from llmtrain.core.losses import clipped_value_loss, kl_estimate, token_entropy, whiten
from llmtrain.core.model import GPT, preset, token_logprobs

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the pure pieces -------------------------------------------------------------------
def test_clipped_value_loss_is_half_the_squared_error_and_clips_far_moves():
    returns = torch.tensor([[1.0, 2.0, 0.0]])
    old = torch.tensor([[0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert float(clipped_value_loss(old, old, returns, mask)) == pytest.approx(0.5 * (1 + 4) / 2)
    # a value that jumped from 0 to 2 (returns 2) is judged as if it had moved only 0.2
    new = torch.tensor([[1.0, 2.0, 0.0]], requires_grad=True)
    loss = clipped_value_loss(new, old, returns, mask, clip=0.2)
    assert loss.item() == pytest.approx(0.5 * ((1 - 0.2) ** 2 + (2 - 0.2) ** 2) / 2)
    loss.backward()
    assert new.grad[0, 0] == 0 and new.grad[0, 1] == 0  # the clipped branch carries no gradient
    unclipped = clipped_value_loss(new.detach(), old, returns, mask, clip=None)
    assert float(unclipped) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="clip"):
        clipped_value_loss(new, old, returns, mask, clip=0.0)


def test_whiten_gives_zero_mean_unit_variance_inside_the_mask():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, -7.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    w = whiten(x, mask)
    inside = w[mask.bool()]
    assert float(inside.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float((inside ** 2).mean()) == pytest.approx(1.0, abs=1e-5)
    assert w[0, 3] == 0 and w[1, 2] == 0


def test_token_entropy_is_ln_v_for_uniform_and_zero_for_certain():
    assert float(token_entropy(torch.zeros(7))) == pytest.approx(math.log(7))
    assert float(token_entropy(torch.tensor([50.0, 0.0, 0.0]))) == pytest.approx(0.0, abs=1e-6)


def test_kl_estimates_are_unbiased_for_two_categoricals():
    torch.manual_seed(0)
    p_logits, q_logits = torch.randn(6), torch.randn(6)
    p, q = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    exact = float((p.exp() * (p - q)).sum())
    draws = torch.multinomial(p.exp(), 200_000, replacement=True)
    k1 = kl_estimate(p[draws], q[draws], "k1")
    k3 = kl_estimate(p[draws], q[draws], "k3")
    assert float(k1.mean()) == pytest.approx(exact, abs=0.01)
    assert float(k3.mean()) == pytest.approx(exact, abs=0.01)
    assert bool((k3 >= -1e-6).all())  # k3 is never negative; k1 can be
    assert float(k3.std()) < float(k1.std())
    with pytest.raises(ValueError, match="k1"):
        kl_estimate(p, q, "k2")


# --- rollouts --------------------------------------------------------------------------
def test_sampled_responses_stop_after_their_end_token(tok, world, monkeypatch, nano):
    model = nano()
    examples = qa_examples(world)[:3]
    (a,), (b,) = tok.encode(" born"), tok.encode(" city")
    end, pad = tok.end_id, tok.pad_id
    designed = torch.tensor([[a, end, pad, pad], [a, b, a, b], [end, pad, pad, pad]])

    def fake_generate(idx, max_new_tokens, **kwargs):  # the model "samples" these responses
        return torch.cat([idx, designed[:, :max_new_tokens]], dim=1)

    monkeypatch.setattr(model, "generate", fake_generate)
    ids, attn, P, rmask, finished, texts = ppo.sample_responses(model, tok, examples, 4)
    assert rmask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]  # up to and with <|end|>
    assert finished.tolist() == [True, False, True]
    assert texts == ["born", "born city born city", ""]
    assert attn[:, P:].tolist() == rmask.tolist() and ids.shape == attn.shape


def test_response_logprobs_match_the_models_token_logprobs(tok, world, nano):
    model = nano()
    examples = qa_examples(world)[:4]
    ids, attn, P, rmask, _, _ = ppo.sample_responses(model, tok, examples, 5,
                                                      generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logp, entropy = ppo.response_logprobs_and_entropy(model, ids, attn, P)
        full = token_logprobs(model, ids, attn)[:, P - 1:]
    m = rmask.bool()
    torch.testing.assert_close(logp[m], full[m])
    assert bool((entropy >= 0).all()) and float(entropy.max()) <= math.log(tok.vocab_size) + 1e-4


def test_token_rewards_put_the_score_on_the_last_token_and_charge_kl_everywhere(tok, world, nano):
    model = nano()
    ref = nano(1)
    critic = ppo.ValueModel(nano(2))
    examples = qa_examples(world)[:5]
    cfg = ppo.PPOConfig(max_new_tokens=5, kl_coef=0.3, unfinished_penalty=0.0, device="cpu")
    ro = ppo.make_rollout(model, ref, critic, tok, examples,
                          lambda exs, rs: torch.arange(len(rs), dtype=torch.float32), cfg,
                          torch.Generator().manual_seed(0))
    rewards = ppo.token_rewards(ro, cfg.kl_coef)
    kl = ((ro.logprobs - ro.ref_logprobs) * ro.response_mask).sum(dim=1)
    torch.testing.assert_close(rewards.sum(dim=1), ro.scores - 0.3 * kl)
    assert bool((rewards[ro.response_mask == 0] == 0).all())


# --- the loop --------------------------------------------------------------------------
def test_ppo_raises_the_reward_and_leaves_the_reference_alone(tok, world, nano):
    """A reward for long responses (in characters): PPO must find longer tokens."""
    policy = nano()
    reference = copy.deepcopy(policy)
    ref_state = {k: v.clone() for k, v in reference.state_dict().items()}
    critic = ppo.ValueModel(nano(5))
    reward_fn = lambda exs, rs: torch.tensor([min(len(r), 40) / 10 for r in rs])
    cfg = ppo.PPOConfig(steps=25, batch_size=32, max_new_tokens=4, kl_coef=0.0, lr=3e-3,
                        critic_lr=1e-3, unfinished_penalty=0.0, device="cpu", seed=0)
    trainer = ppo.PPOTrainer(policy, tok, qa_examples(world), reward_fn, cfg,
                             reference=reference, critic=critic)
    history = trainer.fit()
    assert len(history.proxy) == 25 and history.seconds > 0
    first, last = sum(history.proxy[:5]) / 5, history.last("proxy", 5)
    assert last > first + 0.3, (first, last)
    assert history.kl[0] == pytest.approx(0.0, abs=1e-4)  # the first rollout is the reference's
    assert history.last("kl", 5) > 0.1
    for k, v in reference.state_dict().items():
        assert torch.equal(v, ref_state[k]), f"the reference changed: {k}"


def test_update_is_the_learning_half_of_step(tok, world, nano):
    """``update`` fed a step's own rollout, from the same state, leaves the same weights and
    moments as that step, and advances nothing (chapter 08 checks its written-out update
    against it)."""
    reward_fn = lambda exs, rs: torch.tensor([min(len(r), 40) / 10 for r in rs])

    def trainer():
        cfg = ppo.PPOConfig(steps=2, batch_size=6, max_new_tokens=4, entropy_coef=0.01,
                            lr=1e-3, unfinished_penalty=0.0, device="cpu", seed=3)
        return ppo.PPOTrainer(nano(), tok, qa_examples(world), reward_fn, cfg,
                              critic=ppo.ValueModel(nano(5)))

    a, b = trainer(), trainer()
    a.step()
    b.step()  # both past their first step: Adam has moments, the shuffles depend on the step
    a.step()
    out = b.update(a.last_rollout)
    assert b.steps_done == 1 and len(b.history.proxy) == 1
    assert torch.equal(out["advantages"], a.last_advantages)
    assert len(out["clip_fractions"]) == b.config.epochs * b.config.minibatches
    for name in ("policy", "critic"):
        model_a, model_b = getattr(a, name), getattr(b, name)
        opt_a, opt_b = getattr(a, f"{name}_opt"), getattr(b, f"{name}_opt")
        for p_a, p_b in zip(model_a.parameters(), model_b.parameters()):
            assert torch.equal(p_a, p_b), f"the {name}'s weights differ"
            for k in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(opt_a.state[p_a][k], opt_b.state[p_b][k])


def test_a_kl_penalty_keeps_the_policy_closer(tok, world, nano):
    reward_fn = lambda exs, rs: torch.tensor([min(len(r), 40) / 10 for r in rs])
    kls = {}
    for kl_coef in (0.0, 2.0):
        policy = nano()
        cfg = ppo.PPOConfig(steps=15, batch_size=32, max_new_tokens=4, kl_coef=kl_coef, lr=3e-3,
                            critic_lr=1e-3, unfinished_penalty=0.0, device="cpu", seed=0)
        history = ppo.PPOTrainer(policy, tok, qa_examples(world), reward_fn, cfg,
                                 critic=ppo.ValueModel(nano(5))).fit()
        kls[kl_coef] = history.last("kl", 5)
    assert kls[2.0] < kls[0.0], kls


def test_evaluating_the_reference_against_itself_gives_zero_kl(tok, world, nano):
    model = nano()
    examples = qa_examples(world)[:8]
    out = ppo.evaluate_policy(model, model, tok, examples,
                              lambda exs, rs: torch.ones(len(rs)), samples=2, max_new_tokens=4)
    assert out["kl"] == pytest.approx(0.0, abs=1e-6)
    assert out["proxy"] == pytest.approx(1.0) and len(out["responses"]) == 8
    assert 1 <= out["length"] <= 4


def test_bad_settings_are_clear_errors(tok, world, nano):
    with pytest.raises(ValueError, match="kl_coef"):
        ppo.PPOConfig(kl_coef=-1)
    with pytest.raises(ValueError, match="minibatches"):
        ppo.PPOConfig(batch_size=2, minibatches=4)
    with pytest.raises(ValueError, match="positive whole number"):
        ppo.PPOConfig(steps=0)
    model = nano()
    with pytest.raises(ValueError, match="critic"):
        ppo.PPOTrainer(model, tok, qa_examples(world), lambda e, r: torch.zeros(len(r)))
    with pytest.raises(ValueError, match="max_new_tokens"):
        ppo.sample_responses(model, tok, qa_examples(world)[:2], max_new_tokens=100)
    bad = ppo.PPOTrainer(model, tok, qa_examples(world), lambda e, r: torch.zeros(len(r) + 1),
                         ppo.PPOConfig(batch_size=4, max_new_tokens=3, device="cpu"),
                         critic=ppo.ValueModel(nano()))
    with pytest.raises(ValueError, match="one score per response"):
        bad.step()


def test_a_policy_copied_from_a_frozen_reference_still_trains():
    torch.manual_seed(0)
    ref = GPT(preset("nano", vocab_size=64, block_size=32)).requires_grad_(False)
    policy = copy.deepcopy(ref)
    with pytest.raises(ValueError, match="separate model"):
        ppo.PPOTrainer(policy, None, ["a prompt"], None, ppo.PPOConfig(steps=1), reference=policy,
                   critic=ppo.ValueModel(copy.deepcopy(ref)))
    ppo.PPOTrainer(policy, None, ["a prompt"], None, ppo.PPOConfig(steps=1), reference=ref,
               critic=ppo.ValueModel(copy.deepcopy(ref)))
    assert all(p.requires_grad for p in policy.parameters())
