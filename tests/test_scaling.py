from __future__ import annotations

import math

import numpy as np
import pytest

from llmtrain.pretrain import scaling
from llmtrain.pretrain.scaling import (
    REAL_RUNS,
    fit_power_law,
    gpu_days,
    r_squared,
    real_runs_table,
    training_cost,
    training_flops,
)


def test_fit_recovers_a_known_power_law_exactly():
    n = np.array([2e4, 5e4, 1e5, 3e5, 1e6])
    fit = fit_power_law(n, 7.5 * n ** -0.076)
    assert fit.alpha == pytest.approx(0.076, rel=1e-9)
    assert fit.a == pytest.approx(7.5, rel=1e-9)
    assert fit.floor == 0.0 and fit.n_points == 5
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)  # a perfect power law is a perfect line
    assert fit(3e5) == pytest.approx(7.5 * 3e5 ** -0.076)
    assert fit.x_for(fit(123_456.0)) == pytest.approx(123_456.0, rel=1e-9)


def test_fit_recovers_exponents_from_noisy_data():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e4, 1e7, 12)
    for alpha in (0.05, 0.3, 0.7):
        y = 3.0 * n ** -alpha * np.exp(rng.normal(0, 0.01, n.size))  # 1% multiplicative noise
        fit = fit_power_law(n, y)
        assert fit.alpha == pytest.approx(alpha, abs=0.01)
        assert 0.9 < fit.r2 < 1.0


def test_fit_with_a_known_or_fitted_floor():
    n = np.geomspace(1e3, 1e8, 15)
    y = 1.7 + 400 * n ** -0.34
    known = fit_power_law(n, y, floor=1.7)
    assert known.alpha == pytest.approx(0.34, rel=1e-9) and known.a == pytest.approx(400, rel=1e-9)
    found = fit_power_law(n, y, floor="fit")
    assert found.floor == pytest.approx(1.7, abs=0.02)
    assert found.alpha == pytest.approx(0.34, abs=0.01)
    pure = fit_power_law(n, y)  # ignoring the floor bends the line: a worse fit, a flatter slope
    assert pure.r2 < found.r2 and pure.alpha < found.alpha
    assert found(1e12) > 1.7  # the law with a floor never predicts below it


def test_r_squared_reference_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r_squared(y, y) == 1.0
    assert r_squared(y, np.full(4, y.mean())) == 0.0  # predicting the mean explains nothing
    ss_res, ss_tot = 0.5**2 * 4, np.sum((y - 2.5) ** 2)
    assert r_squared(y, y + 0.5) == pytest.approx(1 - ss_res / ss_tot)


@pytest.mark.parametrize("x, y, floor", [
    ([1, 2], [3, 2], 0.0),  # too few points
    ([1, 2, -3], [3, 2, 1], 0.0),  # x must be positive
    ([1, 2, 3], [3, 2, 1], 2.0),  # y below the floor
    ([1, 2, 3], [3, 2, 1], "huh"),
    ([5, 5, 5], [3, 2, 1], 0.0),  # x must vary
    ([1, 2, 3], [3, 2], 0.0),
])
def test_fit_rejects_bad_input(x, y, floor):
    with pytest.raises(ValueError):
        fit_power_law(x, y, floor=floor)


def test_six_n_d_arithmetic():
    assert training_flops(1, 1) == 6
    assert training_flops(1_000_000, 5_000_000) == 3e13
    gpt3 = next(r for r in REAL_RUNS if r.name.startswith("GPT-3"))
    assert gpt3.flops == pytest.approx(3.15e23)  # 6 * 175e9 * 300e9
    for run in REAL_RUNS:  # 6ND is within 10% of what the papers report
        if run.reported_flops:
            assert run.flops == pytest.approx(run.reported_flops, rel=0.10), run.name
    with pytest.raises(ValueError):
        training_flops(-1, 10)


def test_llama3_scale_matches_the_syllabus_and_the_paper():
    llama3 = next(r for r in REAL_RUNS if r.name.startswith("Llama 3"))
    assert 15e12 <= llama3.n_tokens < 16e12  # "about 15 trillion tokens"
    cost = training_cost(llama3.flops, n_gpus=16_384)
    assert 40 < cost["wall_days"] < 120  # months, on thousands of GPUs
    assert cost["dollars"] > 10e6  # tens of millions of dollars
    # at 40% utilisation, 6ND lands within 20% of the GPU-hours the model card reports
    assert cost["gpu_days"] * 24 == pytest.approx(llama3.reported_gpu_hours, rel=0.2)


def test_gpu_days_conversion():
    one_day_at_full_speed = scaling.H100_BF16_DENSE_FLOPS * 86_400
    assert gpu_days(one_day_at_full_speed, utilization=1.0) == pytest.approx(1.0)
    assert gpu_days(one_day_at_full_speed) == pytest.approx(1 / 0.4)
    assert gpu_days(86_400e9, flops_per_second=1e9, utilization=1.0) == pytest.approx(1.0)
    cost = training_cost(one_day_at_full_speed, n_gpus=4, utilization=1.0,
                         dollars_per_gpu_hour=3.0)
    assert cost == pytest.approx({"gpu_days": 1.0, "wall_days": 0.25, "dollars": 72.0})
    with pytest.raises(ValueError):
        gpu_days(1e20, utilization=0)


def test_real_runs_table_rows():
    rows = real_runs_table()
    assert [r["name"] for r in rows] == [r.name for r in REAL_RUNS]
    assert all(math.isclose(r["flops_6nd"], 6 * r["params"] * r["tokens"]) for r in rows)
    chinchilla = next(r for r in rows if r["name"].startswith("Chinchilla"))
    assert chinchilla["tokens_per_param"] == pytest.approx(20)  # the Chinchilla rule of thumb


# --- the IsoFLOP experiment ------------------------------------------------------------
def test_model_params_matches_the_model():
    from llmtrain.core.model import GPT, GPTConfig

    for n_layer, n_embd in [(1, 16), (2, 24), (2, 64), (3, 96)]:
        m = GPT(GPTConfig(vocab_size=300, block_size=32, n_layer=n_layer,
                          n_head=max(1, n_embd // 32), n_embd=n_embd))
        assert scaling.model_params(300, 32, n_layer, n_embd) == m.num_params()


def test_steps_for_budget_spends_six_n_d():
    n = scaling.model_params(2048, 64, 2, 32)
    steps = scaling.steps_for_budget(6e10, n, 1024)
    assert abs(scaling.training_flops(n, steps * 1024) - 6e10) <= scaling.training_flops(n, 512)
    assert scaling.steps_for_budget(1.0, n, 1024) == 1  # at least one step
    with pytest.raises(ValueError):
        scaling.steps_for_budget(0, n, 1024)


def test_fit_loss_law_recovers_a_known_floor_law():
    n = np.geomspace(3e4, 1e6, 8)
    law = scaling.fit_loss_law(n, 2.1 + 900 * n ** -0.62)
    assert law.E == pytest.approx(2.1, abs=0.01)
    assert law.alpha == pytest.approx(0.62, abs=0.005)
    assert law.A == pytest.approx(900, rel=0.05)
    assert law.r2 == pytest.approx(1.0, abs=1e-6) and law.B == 0.0
    assert law(1e12) > 2.1 - 0.01  # never below its floor
    with pytest.raises(ValueError):
        law.optimal_n(1e15)  # the size-only law has no compute optimum


def test_fit_loss_law_with_noise_and_a_data_term():
    rng = np.random.default_rng(1)
    n = np.repeat(np.geomspace(4e4, 7e5, 6), 3)
    d = np.tile([1e5, 4e5, 1.6e6], 6) * rng.uniform(0.8, 1.25, n.size)
    truth = scaling.LossLaw(E=1.8, A=300.0, alpha=0.5, B=2000.0, beta=0.45)
    y = truth(n, d) + rng.normal(0, 0.005, n.size)
    law = scaling.fit_loss_law(n, y, d)
    assert law.E == pytest.approx(1.8, abs=0.15)
    assert law.alpha == pytest.approx(0.5, abs=0.1) and law.beta == pytest.approx(0.45, abs=0.1)
    assert law.r2 > 0.99
    # the compute optimum from the fitted law lands near the true one
    assert law.optimal_n(1e12) == pytest.approx(truth.optimal_n(1e12), rel=0.5)
    few = n[::3]
    noisy = scaling.fit_loss_law(few, (1.8 + 300 * few ** -0.5) * (1 + rng.normal(0, 0.01, 6)))
    assert noisy.E > 0 and noisy.alpha > 0


def test_optimal_n_is_the_minimum_of_the_law_at_fixed_compute():
    law = scaling.LossLaw(E=1.5, A=400.0, alpha=0.4, B=900.0, beta=0.3)
    c = 3e12
    grid = np.geomspace(1e3, 1e9, 20001)
    best = grid[np.argmin(law(grid, c / (6 * grid)))]
    assert law.optimal_n(c) == pytest.approx(best, rel=0.01)


def test_fit_loss_law_rejects_bad_input():
    with pytest.raises(ValueError):
        scaling.fit_loss_law([1e4, 2e4, 3e4], [3.0, 2.5, 2.2])  # 3 points, 3 parameters
    with pytest.raises(ValueError):
        scaling.fit_loss_law([1e4, 2e4, 3e4, -1], [3.0, 2.5, 2.2, 2.0])
    with pytest.raises(ValueError):  # rising with N: no E, A >= 0 fits
        scaling.fit_loss_law([1e4, 2e4, 4e4, 8e4], [2.0, 2.5, 3.0, 3.5])


def test_isoflop_minimum_finds_the_vertex():
    n = np.geomspace(2e4, 2e6, 7)
    loss = 3.0 + 0.2 * (np.log(n) - np.log(2e5)) ** 2
    m = scaling.isoflop_minimum(n, loss, budget=6e12)
    assert m.n_opt == pytest.approx(2e5, rel=1e-6) and m.loss_opt == pytest.approx(3.0)
    assert m.interior and m.curvature > 0
    assert m.curve(n) == pytest.approx(loss)
    assert m.d_opt == pytest.approx(6e12 / (6 * 2e5)) and m.tokens_per_param == pytest.approx(25)
    edge = scaling.isoflop_minimum(n, np.linspace(4, 3, 7), budget=1e12)  # falling to the end
    assert not edge.interior and edge.n_opt <= n.max()
    with pytest.raises(ValueError):
        scaling.isoflop_minimum([1, 2], [3, 2], budget=1.0)


def test_train_point_spends_its_budget():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 64, (5000,), generator=g)
    heldout = torch.randint(0, 64, (1000,), generator=g)
    run = scaling.train_point(tokens, heldout, 64, 1, 16, flops=6 * 5500 * 4 * 256, block_size=16,
                              batch_size=16, eval_windows=8)
    assert run["n_params"] == scaling.model_params(64, 16, 1, 16)
    assert run["tokens"] == run["steps"] * 256
    assert run["flops"] == pytest.approx(run["budget"], rel=0.2)
    assert math.isfinite(run["heldout_loss"]) and run["heldout_loss"] > 0
