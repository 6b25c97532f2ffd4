"""The training-run estimator: 6ND, GPU peak, MFU, days, dollars, memory."""

from __future__ import annotations

import pytest

from llmtrain.core.device import GPUSpec
from llmtrain.pretrain import scaling
from llmtrain.scale import run_cost


def test_llama3_405b_takes_months_on_16k_h100s_and_tens_of_millions():
    est = run_cost.estimate_run(405e9, 15.6e12, "NVIDIA H100 SXM", 16_384, 0.4, 2.0)
    assert est.flops == pytest.approx(6 * 405e9 * 15.6e12)
    seconds = est.flops / (989e12 * 0.4) / 16_384  # by hand
    assert est.wall_days == pytest.approx(seconds / 86_400)
    assert est.gpu_hours == pytest.approx(seconds * 16_384 / 3600)
    assert est.dollars == pytest.approx(est.gpu_hours * 2.0)
    assert 30 < est.wall_days < 120 and 10e6 < est.dollars < 100e6
    assert est.tokens_per_second == pytest.approx(15.6e12 / seconds)


def test_the_estimate_agrees_with_the_scaling_module():
    est = run_cost.estimate_run(70e9, 2e12, "NVIDIA A100", 2048, 0.5, 1.5)
    cost = scaling.training_cost(scaling.training_flops(70e9, 2e12), 2048, 312e12, 0.5, 1.5)
    assert est.wall_days == pytest.approx(cost["wall_days"])
    assert est.dollars == pytest.approx(cost["dollars"])


def test_training_state_is_16_bytes_per_parameter_and_decides_the_fewest_gpus():
    assert run_cost.training_state_bytes(1e9) == 16e9
    small = run_cost.estimate_run(1e9, 1e10, "NVIDIA H100 SXM", 8)
    assert small.gpus_to_hold_state == 1 and "fits on one GPU" in small.summary()
    big = run_cost.estimate_run(70e9, 1e10, GPUSpec("toy", 1e15, 80), 8)
    assert big.gpus_to_hold_state == 14  # 1,120 GB over 80 GB each
    assert "sharded" in big.summary() and "14" in big.summary()


def test_twice_the_gpus_halves_the_days_but_not_the_bill():
    a = run_cost.estimate_run(7e9, 1e12, n_gpus=512)
    b = run_cost.estimate_run(7e9, 1e12, n_gpus=1024)
    assert b.wall_days == pytest.approx(a.wall_days / 2) and b.dollars == pytest.approx(a.dollars)


@pytest.mark.parametrize("bad", [dict(n_params=0), dict(n_tokens=-1), dict(n_gpus=0),
                                 dict(mfu=0.0), dict(mfu=1.5), dict(dollars_per_gpu_hour=-1)])
def test_bad_estimates_say_what_to_change(bad):
    args = {"n_params": 1e9, "n_tokens": 1e10, **bad}
    with pytest.raises(ValueError, match="must"):
        run_cost.estimate_run(**args)
    with pytest.raises(ValueError, match="choose one of"):
        run_cost.estimate_run(1e9, 1e10, gpu="a toaster")


def test_measure_step_seconds_times_real_training_steps():
    import torch

    from llmtrain.core.batches import LMBatches
    from llmtrain.core.model import GPT, preset

    tokens = torch.randint(0, 50, (500,), generator=torch.Generator().manual_seed(0))
    model = GPT(preset("nano", vocab_size=50, block_size=16))
    before = model.wte.weight.detach().clone()
    seconds = run_cost.measure_step_seconds(model, LMBatches(tokens, 16, 4), "cpu", steps=3,
                                           warmup=1)
    assert 0 < seconds < 10 and not torch.equal(before, model.wte.weight)  # it really trained
    with pytest.raises(ValueError, match="steps must be"):
        run_cost.measure_step_seconds(model, LMBatches(tokens, 16, 4), steps=0)
