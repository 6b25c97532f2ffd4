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
