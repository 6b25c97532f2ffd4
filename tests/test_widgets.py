from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt

from llmtrain.core.batches import LMBatches
from llmtrain.core.model import GPT, preset
from llmtrain.core.train import TrainConfig, Trainer
from llmtrain.viz.plots import LiveLossPlot, new_axes
from llmtrain.viz.widgets import Playground, slider


def _square_plot(n):
    if n > 8:
        raise ValueError("n is too large: pick 8 or less")
    ax = new_axes(f"squares up to {n}", "x", "x squared")
    ax.plot(range(n + 1), [i * i for i in range(n + 1)])
    return ax.figure, f"sum of squares: {sum(i * i for i in range(n + 1))}"


def test_moving_a_slider_reruns_and_shows_the_new_result():
    n = slider(3, 1, 10, description="n")
    assert isinstance(n, W.IntSlider)
    panel = Playground(_square_plot, {"n": n})
    assert panel.calls == 1 and panel.last_text == "sum of squares: 14"
    n.value = 4
    assert panel.calls == 2 and panel.last_values == {"n": 4}
    assert panel.last_text == "sum of squares: 30"
    assert panel.last_result[0].axes[0].get_title() == "squares up to 4"


def test_a_bad_value_shows_a_message_not_a_traceback():
    n = slider(3, 1, 10)
    panel = Playground(_square_plot, {"n": n})
    n.value = 9
    assert panel.error == "n is too large: pick 8 or less"
    assert "too large" in panel.message.value
    assert panel.last_text == "sum of squares: 14"  # the last good result stays
    n.value = 2
    assert panel.error is None and panel.message.value == ""


def test_run_button_waits_for_a_click():
    n = slider(3, 1, 10)
    panel = Playground(_square_plot, {"n": n}, run_button=True, run_now=False)
    n.value = 5
    assert panel.calls == 0
    panel.button.click()
    assert panel.calls == 1 and panel.last_values == {"n": 5}


def test_log_slider():
    s = slider(1e-3, -5, 0, log=True, description="lr")
    assert isinstance(s, W.FloatLogSlider) and s.value == 1e-3


def test_live_loss_plot_redraws_during_training():
    tokens = list(range(20)) * 50
    model = GPT(preset("nano", vocab_size=20, block_size=8))
    live = LiveLossPlot(every=5, reference=3.0, reference_label="uniform")
    Trainer(model, LMBatches(tokens, 8, 4), TrainConfig(max_steps=20, progress=False),
            callbacks=[live]).fit()
    assert live.steps == list(range(1, 21)) and len(live.losses) == 20
    assert live.redraws == 1 + 4 + 1  # start, every 5 steps, end
    lines = live.ax.get_lines()
    assert list(lines[0].get_xdata()) == live.steps
    assert live.ax.get_xlabel() == "optimizer step"
    plt.close("all")


def test_show_in_place_shows_once_then_updates_the_same_output(monkeypatch):
    import IPython
    import IPython.display

    from llmtrain.viz.plots import show_in_place

    fig = plt.figure()
    assert show_in_place(fig) is None  # not in IPython: nothing shown
    shown = []

    class Handle:
        def update(self, f):
            shown.append(("update", f))

    def fake_display(f, display_id):
        shown.append(("display", f))
        return Handle()

    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", fake_display)
    handle = show_in_place(fig)
    assert show_in_place(fig, handle) is handle
    assert shown == [("display", fig), ("update", fig)]
    plt.close(fig)
