"""The pure losses of chapters 08-09: GAE, PPO's clipped objective, DPO."""

from __future__ import annotations

import math

import pytest
import torch

from llmtrain.core.losses import dpo_loss, gae, masked_mean, ppo_policy_loss


def _gae_by_hand(r, v, gamma, lam):
    T = len(r)
    deltas = [r[t] + gamma * (v[t + 1] if t + 1 < T else 0.0) - v[t] for t in range(T)]
    return [sum((gamma * lam) ** k * deltas[t + k] for k in range(T - t)) for t in range(T)]


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (0.99, 0.0), (0.8, 1.0)])
def test_gae_matches_the_definition(gamma, lam):
    torch.manual_seed(0)
    r, v = torch.randn(3, 6), torch.randn(3, 6)
    adv, ret = gae(r, v, gamma, lam)
    for b in range(3):
        expected = _gae_by_hand(r[b].tolist(), v[b].tolist(), gamma, lam)
        assert adv[b].tolist() == pytest.approx(expected, abs=1e-5)
    torch.testing.assert_close(ret, adv + v)


def test_gae_special_cases_lambda_zero_and_one():
    r = torch.tensor([[0.0, 0.0, 1.0]])
    v = torch.tensor([[0.2, 0.5, 0.7]])
    adv0, _ = gae(r, v, gamma=1.0, lam=0.0)  # one-step TD errors
    assert adv0[0].tolist() == pytest.approx([0.5 - 0.2, 0.7 - 0.5, 1.0 - 0.7])
    adv1, ret1 = gae(r, v, gamma=1.0, lam=1.0)  # Monte-Carlo return minus the value
    assert adv1[0].tolist() == pytest.approx([1 - 0.2, 1 - 0.5, 1 - 0.7])
    assert ret1[0].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_gae_ignores_positions_outside_the_mask():
    r = torch.tensor([[0.0, 1.0, 5.0, 5.0]])
    v = torch.tensor([[0.1, 0.2, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 0, 0]])
    adv, _ = gae(r, v, 1.0, 1.0, mask=mask)
    assert adv[0].tolist() == pytest.approx([1 - 0.1, 1 - 0.2, 0.0, 0.0])
    with pytest.raises(ValueError, match="gamma"):
        gae(r, v, gamma=1.5)
    with pytest.raises(ValueError, match="shape"):
        gae(r, v[:, :2])


def test_ppo_loss_is_minus_the_advantage_on_policy_and_clips_far_moves():
    adv = torch.tensor([[1.0, -2.0, 0.5]])
    mask = torch.ones(1, 3)
    logp = torch.zeros(1, 3)
    loss, frac = ppo_policy_loss(logp, logp, adv, mask)
    assert float(loss) == pytest.approx(-adv.mean().item()) and float(frac) == 0
    # ratio e^1 on a positive advantage: capped at 1 + eps; no gradient past the cap
    new = torch.tensor([[1.0, 0.0, 0.0]], requires_grad=True)
    loss, frac = ppo_policy_loss(new, logp, adv, mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(-(1.2 * 1.0 - 2.0 + 0.5) / 3)
    assert float(frac) == pytest.approx(1 / 3)
    loss.backward()
    assert new.grad[0, 0] == 0 and new.grad[0, 1] != 0
    # a ratio below 1 - eps on a negative advantage is clipped too (pessimistic bound)
    low = torch.tensor([[0.0, -1.0, 0.0]])
    loss, _ = ppo_policy_loss(low, logp, adv, mask, clip_eps=0.2)
    assert float(loss) == pytest.approx(-(1.0 - 2.0 * 0.8 + 0.5) / 3)


def test_ppo_loss_counts_only_masked_tokens():
    adv = torch.tensor([[1.0, 100.0]])
    logp = torch.zeros(1, 2)
    loss, _ = ppo_policy_loss(logp, logp, adv, torch.tensor([[1, 0]]))
    assert float(loss) == pytest.approx(-1.0)
    assert float(masked_mean(torch.ones(2), torch.zeros(2))) == 0.0
    with pytest.raises(ValueError, match="clip_eps"):
        ppo_policy_loss(logp, logp, adv, torch.ones(1, 2), clip_eps=0)


def test_dpo_loss_is_ln2_at_the_reference_and_falls_as_the_margin_grows():
    ref_c, ref_r = torch.tensor([-5.0, -7.0]), torch.tensor([-6.0, -4.0])
    loss, rc, rr = dpo_loss(ref_c, ref_r, ref_c, ref_r, beta=0.1)
    assert float(loss) == pytest.approx(math.log(2))
    assert rc.tolist() == [0.0, 0.0] and rr.tolist() == [0.0, 0.0]
    pol_c, pol_r = ref_c + 2.0, ref_r - 1.0
    loss, rc, rr = dpo_loss(pol_c, pol_r, ref_c, ref_r, beta=0.5)
    assert rc.tolist() == pytest.approx([1.0, 1.0]) and rr.tolist() == pytest.approx([-0.5, -0.5])
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-1.5)))
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(ref_c, ref_r, ref_c, ref_r, beta=0)


def test_dpo_gradient_raises_chosen_and_lowers_rejected():
    pol_c = torch.tensor([-5.0], requires_grad=True)
    pol_r = torch.tensor([-5.0], requires_grad=True)
    loss, _, _ = dpo_loss(pol_c, pol_r, torch.tensor([-5.0]), torch.tensor([-5.0]), beta=0.1)
    loss.backward()
    assert pol_c.grad.item() < 0 < pol_r.grad.item()  # descent raises chosen, lowers rejected
    assert pol_c.grad.item() == pytest.approx(-0.05)  # -beta * sigmoid(0)
