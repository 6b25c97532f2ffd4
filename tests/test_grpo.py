"""GRPO (chapter 16): group advantages, the loss, the trainer, pass@k and the verifiers."""

from __future__ import annotations

import copy
import math
import statistics

import pytest
import torch

from llmtrain.align import grpo, reasoning
from llmtrain.align.reasoning import CoTConfig, Problem
from llmtrain.core.losses import group_advantages, masked_mean

TOK = reasoning.CharTokenizer()


def _by_hand(rows, scale=True, eps=1e-4):
    out = []
    for row in rows:
        mean = sum(row) / len(row)
        sd = statistics.stdev(row)  # Bessel's correction, like torch.std
        out.append([(r - mean) / (sd + eps) if scale else r - mean for r in row])
    return out


# --- group_advantages -------------------------------------------------------------------
def test_group_advantages_match_the_definition():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0], [0.2, 0.5, 0.9, 0.4]])
    for scale in (True, False):
        got = group_advantages(rewards, scale=scale).flatten().tolist()
        want = [a for row in _by_hand(rewards.tolist(), scale) for a in row]
        assert got == pytest.approx(want, abs=1e-6)
    # each row is centred: advantages of a group sum to zero
    assert group_advantages(rewards).sum(dim=1).abs().max() < 1e-5
    # a lone success among many failures gets a larger advantage than one of two
    one, two = group_advantages(torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0],
                                              [1.0, 1, 0, 0, 0, 0, 0, 0]]))[:, 0].tolist()
    assert one > two > 0


def test_a_group_with_equal_rewards_has_zero_advantages_and_no_nan():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    adv = group_advantages(rewards)
    assert torch.isfinite(adv).all()
    assert adv[:2].abs().max() == 0
    assert adv[2].abs().max() > 0


def test_group_advantages_refuse_bad_input():
    with pytest.raises(ValueError, match="n_prompts, group_size"):
        group_advantages(torch.ones(8))
    with pytest.raises(ValueError, match="n_prompts, group_size"):
        group_advantages(torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="at least 2"):
        group_advantages(torch.ones(5, 1))
    with pytest.raises(TypeError, match="tensor"):
        group_advantages([[1.0, 0.0]])
    with pytest.raises(ValueError, match="eps"):
        group_advantages(torch.ones(2, 2), eps=0)
    with pytest.raises(ValueError, match="finite"):
        group_advantages(torch.tensor([[1.0, float("nan")]]))


# --- the loss ---------------------------------------------------------------------------------
def test_token_weights_give_grpo_and_dr_grpo_averages():
    torch.manual_seed(0)
    x = torch.randn(3, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]).float()
    per_response = [(x[i] * mask[i]).sum() / mask[i].sum() for i in range(3)]
    w = grpo.token_weights(mask, length_norm=True)
    assert float(masked_mean(w * x, mask)) == pytest.approx(float(sum(per_response) / 3), abs=1e-6)
    w = grpo.token_weights(mask, length_norm=False, max_len=8)
    sums = [(x[i] * mask[i]).sum() / 8 for i in range(3)]
    assert float(masked_mean(w * x, mask)) == pytest.approx(float(sum(sums) / 3), abs=1e-6)
    assert (w * (1 - mask)).abs().max() == 0


def test_grpo_loss_on_policy_is_minus_the_mean_advantage_and_kl_starts_at_zero():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]).float()
    logp = -torch.rand(2, 4) * mask
    adv = torch.tensor([1.5, -0.5])
    loss, frac = grpo.grpo_loss(logp, logp, logp, adv, mask, kl_coef=0.5)
    assert float(loss) == pytest.approx(-float(adv.mean()), abs=1e-6)
    assert float(frac) == 0
    with pytest.raises(ValueError, match="advantages"):
        grpo.grpo_loss(logp, logp, logp, adv[:, None], mask)


def test_grpo_loss_kl_term_is_the_weighted_k3_estimate():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]]).float()
    logp = torch.tensor([[-0.5, -1.0, 0.0], [-0.2, -0.3, -2.0]])
    ref = torch.tensor([[-0.7, -0.9, 0.0], [-0.2, -0.8, -1.0]])
    zero = torch.zeros(2)
    loss, _ = grpo.grpo_loss(logp, logp, ref, zero, mask, kl_coef=1.0)
    k3 = torch.exp(ref - logp) - (ref - logp) - 1
    want = sum((k3[i] * mask[i]).sum() / mask[i].sum() for i in range(2)) / 2
    assert float(loss) == pytest.approx(float(want), abs=1e-6)


# --- config, sampling, trainer ---------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    (dict(group_size=1), "group_size"), (dict(steps=0), "steps"), (dict(lr=0), "lr"),
    (dict(kl_coef=-1), "kl_coef"), (dict(clip_eps=0), "clip_eps"),
    (dict(max_new_tokens=0), "max_new_tokens"), (dict(scale_rewards="yes"), "scale_rewards"),
    (dict(prompts_per_step=2.5), "prompts_per_step"), (dict(grad_clip=-1), "grad_clip")])
def test_config_refuses_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        grpo.GRPOConfig(**kwargs)


@pytest.fixture(scope="module")
def adder():
    train = reasoning.make_problems(64, 2, seed=3)
    model, _ = reasoning.train_adder(train, "steps", CoTConfig(steps=30, batch_size=32, seed=0))
    return model


def test_sample_groups_orders_rows_by_prompt_and_masks_after_the_end(adder):
    prompts = [p.prompt for p in reasoning.make_problems(3, 2, seed=9)]
    ids, attn, P, rmask, finished, texts = grpo.sample_groups(
        adder, TOK, prompts, 4, generator=torch.Generator().manual_seed(0))
    assert ids.shape[0] == rmask.shape[0] == len(texts) == 12 and P == len(prompts[0])
    assert [TOK.decode(row[:P].tolist()) for row in ids] == [p for p in prompts for _ in range(4)]
    for row, m, done, text in zip(ids[:, P:].tolist(), rmask.tolist(), finished.tolist(), texts):
        n = sum(m)
        assert m == [1] * n + [0] * (len(m) - n)
        assert done == (TOK.eot_id in row[:n]) and (not done or row[n - 1] == TOK.eot_id)
        assert text == TOK.decode(row[:n])
    with pytest.raises(ValueError, match="room"):
        grpo.sample_groups(adder, TOK, prompts, 2, max_new_tokens=999)
    with pytest.raises(ValueError, match="non-empty list"):
        grpo.sample_groups(adder, TOK, prompts[0], 2)


def _const(value):
    return lambda problems, completions: torch.full((len(completions),), float(value))


def test_a_constant_reward_teaches_nothing(adder):
    problems = reasoning.make_problems(40, 2, seed=1)
    policy = copy.deepcopy(adder)
    trainer = grpo.GRPOTrainer(policy, TOK, problems, _const(1.0),
                               grpo.GRPOConfig(steps=1, prompts_per_step=4, group_size=4))
    stats = trainer.step()
    assert stats["signal"] == 0 and stats["reward"] == 1.0
    for a, b in zip(policy.parameters(), adder.parameters()):
        assert torch.equal(a, b)


def test_one_trainer_step_equals_the_update_written_out(adder):
    problems = reasoning.make_problems(40, 2, seed=1)
    cfg = grpo.GRPOConfig(steps=1, prompts_per_step=4, group_size=4, lr=1e-3, kl_coef=0.1,
                          epochs=2, seed=5)
    trainer = grpo.GRPOTrainer(copy.deepcopy(adder), TOK, problems, grpo.exact_reward, cfg,
                               reference=copy.deepcopy(adder))
    ro = trainer.rollout()
    assert ro.rewards.shape == ro.advantages.shape == (4, 4)
    policy = copy.deepcopy(adder)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    m = ro.response_mask.float()
    adv = (ro.rewards - ro.rewards.mean(1, keepdim=True)) / (ro.rewards.std(1, keepdim=True) + 1e-4)
    w = m.sum() / (len(m) * m.sum(1, keepdim=True)) * m
    a_tok = adv.reshape(-1, 1) * w
    for _ in range(cfg.epochs):
        logp = grpo.response_logprobs(policy, ro.ids, ro.attention_mask, ro.prompt_width) * m
        ratio = torch.exp(logp - ro.logprobs)
        objective = torch.minimum(ratio * a_tok, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps)
                                  * a_tok)
        log_ratio = logp - ro.ref_logprobs
        kl = torch.expm1(-log_ratio) + log_ratio
        kl_term = ((w * kl) * m).sum() / m.sum()
        loss = -(objective * m).sum() / m.sum() + cfg.kl_coef * kl_term
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
        opt.step()
    trainer.step()
    for a, b in zip(policy.parameters(), trainer.policy.parameters()):
        assert torch.equal(a, b)
    assert trainer.history.step == [1] and len(trainer.history.kl) == 1


def test_trainer_is_repeatable_and_checks_its_inputs(adder):
    problems = reasoning.make_problems(40, 2, seed=1)
    cfg = grpo.GRPOConfig(steps=2, prompts_per_step=4, group_size=4, seed=2)
    runs = []
    for _ in range(2):
        t = grpo.GRPOTrainer(copy.deepcopy(adder), TOK, problems, grpo.exact_reward, cfg,
                             eval_fn=lambda m: {"x": 1.0}, eval_every=1)
        t.fit()
        runs.append(t)
    for a, b in zip(runs[0].policy.parameters(), runs[1].policy.parameters()):
        assert torch.equal(a, b)
    assert [e["step"] for e in runs[0].history.evals] == [0, 1, 2]
    with pytest.raises(ValueError, match="empty"):
        grpo.GRPOTrainer(adder, TOK, [], grpo.exact_reward)
    with pytest.raises(ValueError, match="prompt"):
        grpo.GRPOTrainer(adder, TOK, ["1+1="], grpo.exact_reward)
    with pytest.raises(ValueError, match="separate"):
        grpo.GRPOTrainer(adder, TOK, problems, grpo.exact_reward, reference=adder)
    bad = grpo.GRPOTrainer(copy.deepcopy(adder), TOK, problems, _const(1.0),
                           grpo.GRPOConfig(prompts_per_step=2, group_size=2))
    bad.reward_fn = lambda p, c: torch.ones(3)
    with pytest.raises(ValueError, match="one reward per completion"):
        bad.step()


# --- pass@k and the verifiers -------------------------------------------------------------------
def test_pass_at_k_is_the_unbiased_estimator():
    assert grpo.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert grpo.pass_at_k(10, 0, 5) == 0.0 and grpo.pass_at_k(10, 10, 1) == 1.0
    assert grpo.pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))
    assert grpo.pass_at_k(5, 4, 2) == 1.0  # every pair holds a right one
    correct = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert grpo.pass_at_k_curve(correct, [1, 4]) == pytest.approx([0.125, 0.5])
    with pytest.raises(ValueError):
        grpo.pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        grpo.pass_at_k(4, 1, 5)


def test_the_verifiers():
    p = Problem(472, 389, 3)
    right = reasoning.target(p, "steps")
    wrong = right[:-1] + "2"
    padded = right + "9753"
    assert grpo.exact_reward([p] * 4, [right, wrong, padded, "0861"]).tolist() == [1, 0, 0, 1]
    assert grpo.digits_somewhere_reward([p] * 4, [right, wrong, padded, "1680"]).tolist() == \
        [1, 0, 1, 1]
    with pytest.raises(ValueError, match="one completion per problem"):
        grpo.exact_reward([p], [right, right])
    assert grpo.final_answer_text("1+2+0=03;  0861 ") == "0861"
    assert grpo.final_answer_text("1+2+0=03=0861") == "1+2+0=03=0861"  # no ';': all of it
    # the sloppy verifier's hole: no ';' turns the scratch work into the "final answer"
    hack = right.replace(";", "=")[:-4] + "9999"
    assert grpo.digits_somewhere_reward([p], [hack]).item() == 1
    assert grpo.exact_reward([p], [hack]).item() == 0


def test_sample_correct_shapes(adder):
    problems = reasoning.make_problems(5, 2, seed=4)
    correct, texts = grpo.sample_correct(adder, TOK, problems, grpo.exact_reward, 3,
                                         batch_size=6)
    assert correct.shape == (5, 3) and correct.dtype == torch.bool
    assert len(texts) == 5 and all(len(t) == 3 for t in texts)


# --- the chapter's pictures and playground ------------------------------------------------------
def test_live_plot_redraws_and_the_playground_runs(adder):
    from llmtrain.viz import grpoviz

    problems = reasoning.make_problems(40, 2, seed=1)
    heldout = reasoning.make_problems(4, 2, seed=2)
    plot = grpoviz.LiveGRPOPlot(every=2, display=False)
    trainer = grpo.GRPOTrainer(copy.deepcopy(adder), TOK, problems, grpo.exact_reward,
                               grpo.GRPOConfig(steps=3, prompts_per_step=2, group_size=2),
                               eval_fn=grpoviz.heldout_pass1(heldout, TOK), eval_every=2,
                               callbacks=[plot])
    history = trainer.fit()
    assert plot.redraws == 3  # steps 1, 2 and the last
    assert [e["step"] for e in history.evals] == [0, 2, 3]
    assert "step 3 of 3" in plot.fig.get_suptitle()
    with pytest.raises(ValueError, match="every"):
        grpoviz.LiveGRPOPlot(every=0, display=False)

    panel = grpoviz.grpo_playground(adder, TOK, problems, heldout,
                                    grpo.GRPOConfig(prompts_per_step=2), max_steps=3,
                                    run_now=False)
    panel.controls["steps"].value = 2
    panel.controls["verifier"].value = "sloppy"
    panel.run_clicked()
    assert panel.error is None and panel.state["history"].step == [1, 2]
    assert "sloppy verifier" in panel.last_text and not panel.button.disabled
    with pytest.raises(ValueError, match="at most 3 steps"):
        panel.fn(**{**panel.values, "steps": 4})
    fig = grpoviz.hacking_plot({"a": history, "b": history})
    assert len(fig.axes) == 2
    ax = grpoviz.passk_plot({"start": ([1, 2], [0.1, 0.2])})
    assert ax.get_xscale() == "log"
