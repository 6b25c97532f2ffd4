"""Playgrounds: sliders and boxes that rerun an experiment and redraw its result.

``Playground(fn, controls)`` shows the controls above an output area. When a
control changes, it calls ``fn(**values)``; ``fn`` returns a matplotlib
figure, a string, or a (figure, string) pair, which replaces the previous
result. The panel also keeps what it showed (``last_values``,
``last_result``, ``calls``, ``error``), so a test can move a slider and check
what the student would see, without a browser.

Bad values are caught: an exception inside ``fn`` is shown as a short
message in the panel instead of a traceback.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import Image, display


class Playground:
    def __init__(self, fn: Callable, controls: dict[str, W.ValueWidget], title: str = "",
                 run_button: bool = False, run_now: bool = True):
        self.fn, self.controls = fn, dict(controls)
        self.out = W.Output()
        self.message = W.HTML()
        self.calls = 0
        self.last_values: dict | None = None
        self.last_result = None
        self.last_text: str | None = None
        self.error: str | None = None
        boxes = list(self.controls.values())
        if run_button:
            self.button = W.Button(description="Run", button_style="primary", icon="play")
            self.button.on_click(lambda _: self.update())
            boxes.append(self.button)
        else:
            self.button = None
            for c in self.controls.values():
                c.observe(lambda change: self.update(), names="value")
        header = [W.HTML(f"<b>{title}</b>")] if title else []
        self.widget = W.VBox(header + [W.HBox(boxes, layout=W.Layout(flex_flow="row wrap")),
                                       self.message, self.out])
        if run_now:
            self.update()

    @property
    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items()}

    def update(self):
        """Call ``fn`` with the current values and show its result."""
        self.calls += 1
        self.last_values = self.values
        self.error = None
        try:
            result = self.fn(**self.last_values)
        except (ValueError, RuntimeError) as e:  # a slider at an extreme, a diverging run, ...
            self.error = str(e)
            self.message.value = f"<span style='color:#b00'>⚠ {_escape(self.error)}</span>"
            return None
        self.message.value = ""
        self.last_result = result
        fig, text = _split(result)
        self.last_text = text
        # A PNG, not the live figure: displaying a pyplot figure inside a widget callback
        # races matplotlib-inline's own flush of open figures (a blank plot in JupyterLab).
        png = None
        if fig is not None:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", bbox_inches="tight")
            plt.close(fig)
            png = buffer.getvalue()
        self.out.clear_output()
        with self.out:
            if text:
                print(text)
            if png is not None:
                display(Image(data=png, format="png"))
        return result

    def _ipython_display_(self):
        display(self.widget)


def _split(result):
    if isinstance(result, tuple):
        fig = next((r for r in result if hasattr(r, "savefig")), None)
        text = next((r for r in result if isinstance(r, str)), None)
        return fig, text
    if hasattr(result, "savefig"):
        return result, None
    return None, None if result is None else str(result)


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slider(value, lo, hi, step=None, description="", log=False, continuous_update=False,
           readout_format=None):
    """A float/int slider with a label; ``log=True`` gives a log-scale float slider."""
    style = {"description_width": "initial"}
    if log:
        return W.FloatLogSlider(value=value, min=lo, max=hi, step=step or 0.1,
                                description=description, continuous_update=continuous_update,
                                style=style, readout_format=readout_format or ".1e")
    if isinstance(value, int) and isinstance(lo, int) and isinstance(hi, int) and (
            step is None or isinstance(step, int)):
        return W.IntSlider(value=value, min=lo, max=hi, step=step or 1, description=description,
                           continuous_update=continuous_update, style=style)
    return W.FloatSlider(value=value, min=lo, max=hi, step=step or (hi - lo) / 100,
                         description=description, continuous_update=continuous_update,
                         style=style, readout_format=readout_format or ".2f")
