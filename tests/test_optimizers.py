from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

from llmtrain.pretrain import optimizers
from llmtrain.pretrain.optimizers import BOUNCE_SHARE, GOOD_SHARE, RISE_TOL, classify_run
from llmtrain.viz import landscapeviz

matplotlib.use("Agg")


# --- landscapes and gradients -------------------------------------------------
@pytest.mark.parametrize("name", list(optimizers.LANDSCAPES))
def test_minimum_is_a_flat_point_and_lowest_on_a_grid(name):
    land = optimizers.LANDSCAPES[name]
    g = optimizers.gradient(land.fn, land.minimum)
    assert float(g.norm()) < 2e-3, g
    assert abs(land.loss(land.minimum)) < 1e-4
    xs, ys = np.meshgrid(np.linspace(*land.xlim, 81), np.linspace(*land.ylim, 81))
    grid = land.fn(torch.from_numpy(np.stack([xs, ys], -1)))
    assert float(grid.min()) > -1e-4  # no point of the window is below the minimum


def test_two_basins_has_a_shallower_second_basin():
    land = optimizers.LANDSCAPES["two_basins"]
    shallow = optimizers.run(land, "gd", 0.05, 400, start=(1.5, 0.5)).points[-1]
    assert shallow[0] > 0.5
    assert 0.5 < land.loss(shallow) < 0.7
    assert float(optimizers.gradient(land.fn, shallow).norm()) < 1e-6


@pytest.mark.parametrize("name", list(optimizers.LANDSCAPES))
def test_autograd_gradient_matches_finite_difference(name):
    land = optimizers.LANDSCAPES[name]
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        p = torch.rand(2, generator=gen, dtype=torch.float64) * 3 - 1.5
        torch.testing.assert_close(optimizers.gradient(land.fn, p),
                                   optimizers.finite_difference(land.fn, p),
                                   rtol=1e-6, atol=1e-6)


def test_valley_gradient_by_hand():
    g = optimizers.gradient(optimizers.valley, (-4.5, -1.5))
    torch.testing.assert_close(g, torch.tensor([0.01 * -4.5, -1.5], dtype=torch.float64))


# --- the update rules against torch.optim ---------------------------------------
def _torch_trajectory(land, opt_factory, steps):
    p = torch.tensor(land.start, dtype=torch.float64, requires_grad=True)
    opt = opt_factory([p])
    points = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        land.fn(p).backward()
        opt.step()
        points.append(p.detach().clone())
    return torch.stack(points).numpy()


@pytest.mark.parametrize("name", ["valley", "banana", "two_basins"])
@pytest.mark.parametrize("method", optimizers.METHODS)
def test_hand_written_steps_equal_torch_optim(name, method):
    land = optimizers.LANDSCAPES[name]
    lr, steps = land.lrs[method], 50
    factories = {
        "gd": lambda ps: torch.optim.SGD(ps, lr=lr),
        "momentum": lambda ps: torch.optim.SGD(ps, lr=lr, momentum=0.9),
        "adam": lambda ps: torch.optim.Adam(ps, lr=lr, betas=(0.9, 0.999), eps=1e-8),
    }
    ours = optimizers.run(land, method, lr, steps).points
    theirs = _torch_trajectory(land, factories[method], steps)
    assert ours.shape == theirs.shape == (steps + 1, 2)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_momentum_and_adam_single_steps_by_formula():
    p, g = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 4.0])
    p1, v1 = optimizers.momentum_step(p, g, torch.tensor([1.0, 1.0]), lr=0.1, beta=0.5)
    torch.testing.assert_close(v1, torch.tensor([1.0, 4.5]))
    torch.testing.assert_close(p1, torch.tensor([0.9, -2.45]))
    # Adam's first step moves every parameter by about lr, whatever its gradient's size
    p2, m, v = optimizers.adam_step(p, g, torch.zeros(2), torch.zeros(2), 1, lr=0.1)
    torch.testing.assert_close(p2, torch.tensor([0.9, -2.1]), rtol=0, atol=1e-6)
    torch.testing.assert_close(m, 0.1 * g)
    torch.testing.assert_close(v, 0.001 * g**2)


def test_run_many_equals_separate_runs_and_stops_blown_up_runs():
    lrs = [0.2, 1.0, 2.5, 10.0, 40.0]
    many = optimizers.run_many("valley", "gd", lrs, 60)
    for lr, tr in zip(lrs, many):
        alone = optimizers.run("valley", "gd", lr, 60)
        np.testing.assert_allclose(tr.losses, alone.losses, rtol=1e-12)
        assert tr.lr == lr
    # lr = 40 > 2 / curvature: the loss grows 39^2 per step and the run is cut short
    assert many[-1].stopped_early and len(many[-1].losses) < 10
    assert many[-1].losses[-1] > 1e6 * many[-1].losses[0]
    assert not many[0].stopped_early and len(many[0].losses) == 61


def test_run_rejects_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        optimizers.run("valley", "sgd")
    with pytest.raises(ValueError, match="learning rate"):
        optimizers.run("valley", "gd", -1.0)
    with pytest.raises(ValueError, match="landscape"):
        optimizers.run("mountain")


def test_steps_to_reach_and_best_lr():
    # below for good from step 4
    assert optimizers.steps_to_reach([5, 3, 0.5, 2, 0.4, 0.1], 1.0) == 4
    assert optimizers.steps_to_reach([0.5, 0.4], 1.0) == 0
    assert optimizers.steps_to_reach([5, 3, 2], 1.0) is None
    assert optimizers.steps_to_reach([5, 0.1, float("nan")], 1.0) is None
    lr, n = optimizers.best_lr("valley", "gd", [0.1, 1.0, 1.5, 3.0], 200, 1e-3)
    assert lr == 1.5 and 100 < n < 200  # 3.0 diverges, smaller ones are slower


def test_momentum_and_adam_beat_gradient_descent_on_the_valley():
    lrs = np.logspace(-2, 1, 31)
    steps = {m: optimizers.best_lr("valley", m, lrs, 200, 1e-3)[1] for m in optimizers.METHODS}
    assert steps["momentum"] < 0.6 * steps["gd"] and steps["adam"] < 0.6 * steps["gd"], steps


# --- verdicts -------------------------------------------------------------------
def _decay(n=21, start=1.0, end=1e-3):
    return list(np.geomspace(start, end, n))


def test_classify_diverging_boundary():
    L0 = _decay()
    assert classify_run(L0[:-1] + [1.0 + 1e-9]) == "diverging"  # last just above the first
    assert classify_run(L0[:-1] + [1.0]) != "diverging"  # equal is not above
    assert classify_run(L0[:5] + [float("nan")]) == "diverging"
    assert classify_run(L0[:5] + [math.inf]) == "diverging"


def test_classify_oscillating_boundary():
    n_steps = 20
    need = math.ceil(BOUNCE_SHARE * n_steps)  # 2 rises out of 20 steps
    base = _decay(n_steps + 1)

    def with_rises(k, size):
        L_ = list(base)
        for i in range(k):
            j = 3 + 4 * i
            L_[j] = L_[j - 1] + size
        return L_

    big = 2 * RISE_TOL
    assert classify_run(with_rises(need, big)) == "oscillating"
    assert classify_run(with_rises(need - 1, big)) == "good"
    # rises smaller than RISE_TOL of the starting gap do not count
    assert classify_run(with_rises(need, 0.5 * RISE_TOL)) == "good"


def test_classify_slow_good_boundary_and_floor():
    inside = list(np.linspace(1.0, GOOD_SHARE * 0.99, 21))
    outside = list(np.linspace(1.0, GOOD_SHARE * 1.01, 21))
    assert classify_run(inside) == "good"
    assert classify_run(outside) == "slow"
    # with a floor of 2, the gap is measured from 2
    assert classify_run([x + 2 for x in inside], floor=2.0) == "good"
    assert classify_run([x + 2 for x in inside]) == "slow"


def test_classify_rejects_too_short():
    with pytest.raises(ValueError):
        classify_run([1.0])
    assert set(optimizers.VERDICTS) == {"slow", "good", "oscillating", "diverging"}


@pytest.mark.parametrize("steps", [40, 60, 300])
def test_the_chapter_regimes_on_the_lopsided_valley(steps):
    lrs = [0.1, 1.0, 2.5, 10.0]  # the chapter's four learning rates, for 40 to 300 steps
    verdicts = [tr.verdict for tr in optimizers.run_many("lopsided_valley", "gd", lrs, steps)]
    assert verdicts == ["slow", "good", "oscillating", "diverging"]
    # on the symmetric valley the same zigzag never makes the loss rise
    tr = optimizers.run("valley", "gd", 1.9, 60)
    assert np.all(np.diff(tr.losses) <= 0)
    assert np.sign(tr.points[1, 1]) != np.sign(tr.points[2, 1])  # ...yet it zigzags


# --- plots, playground, slices ----------------------------------------------------
def test_plots_have_titles_and_labels():
    import matplotlib.pyplot as plt

    trs = optimizers.run_many("valley", "gd", [0.5, 1.5], 20)
    ax = landscapeviz.plot_landscape("valley", trs)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.get_legend().get_texts()) == 4  # minimum, start, two runs
    ax = landscapeviz.plot_losses(trs)
    assert ax.get_yscale() == "log" and "slow" in ax.get_legend().get_texts()[0].get_text()
    ax = landscapeviz.plot_1d_step(lambda w: (w - 3) ** 2, 1.0, 0.25, -1, 6)
    assert "w=2" in ax.get_legend().get_texts()[-1].get_text()  # 1 - 0.25 * (-4) = 2
    plt.close("all")


def test_explore_in_a_playground():
    import matplotlib.pyplot as plt

    from llmtrain.viz.widgets import Playground, slider

    panel = Playground(lambda lr: landscapeviz.explore("lopsided_valley", "gd", lr, 60),
                       {"lr": slider(1.0, -2, 1.5, 0.05, "lr", log=True)})
    assert panel.last_text.startswith("Verdict: GOOD")
    panel.controls["lr"].value = 10.0
    assert panel.last_text.startswith("Verdict: DIVERGING")
    panel.controls["lr"].value = 0.1
    assert panel.last_text.startswith("Verdict: SLOW")
    panel.controls["lr"].value = 2.5
    assert panel.last_text.startswith("Verdict: OSCILLATING")
    plt.close("all")


def test_loss_along_restores_parameters_and_follows_the_slice():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(8, 3)
    loss_at = lambda m: (m(x) ** 2).mean()
    before = [p.detach().clone() for p in model.parameters()]
    direction = [torch.ones_like(p) for p in model.parameters()]
    ds = [0.0, 0.5, -1.0]
    got = optimizers.loss_along(model, loss_at, direction, ds)
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
    for d, value in zip(ds, got):
        w, bias = before[0] + d, before[1] + d
        assert value == pytest.approx(float(((x @ w.T + bias) ** 2).mean()), rel=1e-6)
    with pytest.raises(ValueError):
        optimizers.loss_along(model, loss_at, direction[:1], ds)
