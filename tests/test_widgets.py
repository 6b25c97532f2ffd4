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


def test_the_panel_shows_the_text_and_the_figure_as_values():
    panel = Playground(_square_plot, {"n": slider(3, 1, 10)})
    shown = panel.result_view.value
    assert "sum of squares: 14" in shown and "<img src='data:image/png;base64," in shown
    panel.controls["n"].value = 4
    assert "sum of squares: 30" in panel.result_view.value
    text_only = Playground(lambda n: f"<{n}> & more", {"n": slider(3, 1, 10)})
    assert text_only.result_view.value == "<pre style='margin:0.4em 0'>&lt;3&gt; &amp; more</pre>"


def _widget_tree(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _widget_tree(child)


def test_playgrounds_never_capture_output():
    """An ``Output`` widget written to during a cell can hang plain papermill, nbconvert and
    nbval forever (jupyter/nbclient issue 312; the measurements are in
    benchmarks/bench_headless_hang.py): a Playground shows its results through values only."""
    for run_button in (False, True):
        panel = Playground(_square_plot, {"n": slider(3, 1, 10)}, run_button=run_button)
        kinds = [type(w).__name__ for w in _widget_tree(panel.widget)]
        assert "Output" not in kinds, kinds


def test_the_run_button_is_busy_while_it_runs():
    seen = []

    def slow(n):
        seen.append((panel.button.disabled, panel.button.description,
                     "Running" in panel.message.value))
        if n > 5:
            raise RuntimeError("diverged")
        return f"ran with {n}"

    n = slider(3, 1, 10)
    panel = Playground(slow, {"n": n}, run_button=True, run_now=False)
    panel.button.click()
    assert seen == [(True, "Running...", True)]
    assert panel.message.value == "" and panel.last_text == "ran with 3"
    assert (panel.button.disabled, panel.button.description) == (False, "Run")
    n.value = 7
    panel.button.click()                   # a failing run gives the button back too
    assert panel.error == "diverged" and not panel.button.disabled


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
