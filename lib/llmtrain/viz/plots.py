"""Plots the chapters share, including a loss curve that redraws while training runs.

Every plot has a title and labelled axes with units. Functions take an
optional ``ax`` so a chapter can put several plots side by side.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..core.train import Callback


def new_axes(title: str, xlabel: str, ylabel: str, ax=None, figsize=(6, 3.5)):
    """An axes with title and labels (a new figure unless ``ax`` is given)."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return ax


def show_in_place(fig, handle=None):
    """Show ``fig`` in the notebook, or redraw it where it was shown before: pass the
    ``handle`` this returned the first time. Outside IPython it shows nothing and returns
    ``handle`` unchanged."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return handle
    if get_ipython() is None:
        return handle
    if handle is None:
        return display(fig, display_id=True)
    handle.update(fig)
    return handle


class LiveLossPlot(Callback):
    """A training callback that redraws the loss curve every ``every`` steps.

    In a notebook the figure updates in place (one output, redrawn); in a
    script or a test nothing is displayed, but ``steps``, ``losses`` and
    ``redraws`` record what would have been drawn, so tests can check it.
    """

    def __init__(self, every: int = 10, title: str = "Training loss (live)",
                 reference: float | None = None, reference_label: str = "", display=True):
        self.every, self.title, self.display = every, title, display
        self.reference, self.reference_label = reference, reference_label
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.evals: list[tuple[int, dict]] = []
        self.redraws = 0
        self.fig, self.ax, self._handle = None, None, None

    def on_train_start(self, trainer):
        self.fig, self.ax = plt.subplots(figsize=(6, 3.5))
        plt.close(self.fig)  # drawn through the display handle only
        self._redraw()

    def on_step(self, trainer, step, loss):
        self.steps.append(step)
        self.losses.append(loss)
        if step % self.every == 0:
            self._redraw()

    def on_eval(self, trainer, step, metrics):
        self.evals.append((step, dict(metrics)))

    def on_train_end(self, trainer):
        self._redraw()

    def _redraw(self):
        ax = self.ax
        ax.clear()
        new_axes(self.title, "optimizer step", "loss (nats/token)", ax)
        if self.steps:
            ax.plot(self.steps, self.losses, color="C0", lw=1, label="training loss")
        evals = [(s, m["heldout_loss"]) for s, m in self.evals if "heldout_loss" in m]
        if evals:
            ax.plot(*zip(*evals), "o-", color="C1", label="held-out loss")
        if self.reference is not None:
            ax.axhline(self.reference, color="gray", ls="--", label=self.reference_label)
        if self.steps or self.reference is not None:
            ax.legend(loc="upper right")
        self.redraws += 1
        if self.display:
            self._show()

    def _show(self):
        self._handle = show_in_place(self.fig, self._handle)
