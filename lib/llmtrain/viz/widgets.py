"""Playgrounds: sliders and boxes that rerun an experiment and redraw its result.

``Playground(fn, controls)`` shows the controls above an output area. When a
control changes, it calls ``fn(**values)``; ``fn`` returns a matplotlib
figure, a string, or a (figure, string) pair, which replaces the previous
result. The panel also keeps what it showed (``last_values``,
``last_result``, ``calls``, ``error``), so a test can move a slider and check
what the student would see, without a browser.

Bad values are caught: an exception inside ``fn`` is shown as a short
message in the panel instead of a traceback.

The result is shown by *setting widget values* (an ``HTML`` widget holding the
text and the figure as a PNG), never by capturing output into an
``ipywidgets.Output``. Headless runners (papermill, nbconvert, nbval) mimic
an ``Output`` widget by sending a message on the kernel's shell channel from
inside their output handler, and that send can swallow the wake-up for the
cell's reply: the run then hangs forever after the cell has finished
(jupyter/nbclient issue 312; reproduced in tests/test_widgets.py's
``test_playgrounds_never_capture_output``). Setting a value sends nothing back.

With ``run_button=True`` (playgrounds that train for seconds), the button is
disabled and says "Running..." while ``fn`` runs, so a second click cannot
queue another run and the learner sees that something is happening.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import display


class Playground:
    def __init__(self, fn: Callable, controls: dict[str, W.ValueWidget], title: str = "",
                 run_button: bool = False, run_now: bool = True):
        self.fn, self.controls = fn, dict(controls)
        self.result_view = W.HTML()  # the text and the figure (a PNG in an <img>)
        self.message = W.HTML()
        self.calls = 0
        self.last_values: dict | None = None
        self.last_result = None
        self.last_text: str | None = None
        self.error: str | None = None
        boxes = list(self.controls.values())
        if run_button:
            self.button = W.Button(description="Run", button_style="primary", icon="play")
            self.button.on_click(lambda _: self.run_clicked())
            boxes.append(self.button)
        else:
            self.button = None
            for c in self.controls.values():
                c.observe(lambda change: self.update(), names="value")
        header = [W.HTML(f"<b>{title}</b>")] if title else []
        self.widget = W.VBox(header + [W.HBox(boxes, layout=W.Layout(flex_flow="row wrap")),
                                       self.message, self.result_view])
        if run_now:
            self.update()

    @property
    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items()}

    def run_clicked(self):
        """The Run button: busy while ``fn`` runs, ready again afterwards (even if it failed)."""
        self.button.disabled, self.button.description = True, "Running..."
        self.button.icon = "hourglass-half"
        self.message.value = "<i>Running: the result replaces the one below when it is done.</i>"
        try:
            return self.update()
        finally:
            self.button.disabled, self.button.description = False, "Run"
            self.button.icon = "play"

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
        parts = []
        if text:
            parts.append(f"<pre style='margin:0.4em 0'>{html.escape(text)}</pre>")
        if fig is not None:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", bbox_inches="tight")
            plt.close(fig)
            data = base64.b64encode(buffer.getvalue()).decode("ascii")
            parts.append(f"<img src='data:image/png;base64,{data}' style='max-width:100%'/>")
        self.result_view.value = "".join(parts)
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
    return html.escape(s, quote=False)


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
