"""Chapter 13's pictures and playgrounds, driven without a browser."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from llmtrain.scale import comm_cost, run_cost
from llmtrain.viz import scaleviz


def test_ring_plot_has_a_panel_per_step_and_ends_with_every_name_everywhere():
    fig = scaleviz.ring_plot(3)
    assert len(fig.axes) == 1 + 2 * 2
    last = [t.get_text() for t in fig.axes[-1].texts]
    assert last == ["ABC"] * 9
    first = [t.get_text() for t in fig.axes[0].texts]
    assert first == ["A"] * 3 + ["B"] * 3 + ["C"] * 3
    plt.close(fig)
    with pytest.raises(ValueError, match="n_workers"):
        scaleviz.ring_plot(1)


def test_estimator_playground_follows_the_sliders():
    panel = scaleviz.estimator_playground()
    assert panel.error is None and "3.79e+25 FLOPs" in panel.last_text
    days = run_cost.estimate_run(405e9, 15.6e12, n_gpus=16_384).wall_days
    assert f"{days:,.1f} days" in panel.last_text
    panel.controls["log2_gpus"].value = 15.0  # 32,768 GPUs: half the days
    assert f"{days / 2:,.1f} days" in panel.last_text and "32,768 x" in panel.last_text
    panel.controls["gpu"].value = "NVIDIA A100"
    assert "NVIDIA A100" in panel.last_text and panel.calls == 3
    panel.controls["n_params"].value = 1e8  # a small model's state fits one GPU
    assert "fits on one GPU" in panel.last_text


def test_scaling_playground_shows_efficiency_and_reacts_to_the_link():
    panel = scaleviz.scaling_playground()
    fig, text = panel.last_result
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and "efficiency" in fig.axes[0].get_ylabel()
    effs = list(lines[0].get_ydata())
    assert effs[0] == pytest.approx(1.0) and all(a >= b for a, b in zip(effs, effs[1:]))
    before = text
    panel.controls["interconnect"].value = "1 Gb/s Ethernet"
    assert panel.last_text != before and "below 50%" in panel.last_text
    panel.controls["interconnect"].value = "NVLink 4 (H100, per direction)"
    assert len(panel.last_result[0].axes[0].get_lines()) == 1


def test_efficiency_plot_draws_one_line_per_curve():
    points = comm_cost.data_parallel_scaling(1.0, 1e8, [1, 2, 4], 1e9)
    ax = scaleviz.efficiency_plot({"a": points, "b": points})
    assert len(ax.get_lines()) == 2 and ax.get_xscale() == "log"
    plt.close(ax.figure)
