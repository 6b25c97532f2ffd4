"""Chapter 02's pictures: a landscape with the paths optimizers take, loss curves, one step
in 1-D, and ``explore``, the chapter's playground (figure and verdict for one run)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..pretrain.optimizers import (
    METHOD_NAMES,
    Landscape,
    Trajectory,
    get_landscape,
    gradient,
    run,
)
from .plots import new_axes


# --- plots --------------------------------------------------------------------
def plot_landscape(landscape: str | Landscape, trajectories: Sequence[Trajectory] = (),
                   ax=None, title: str | None = None, n_grid: int = 200, colors=None):
    """Contour plot of the loss over the two parameters, with optimizer paths on top."""
    land = get_landscape(landscape)
    ax = new_axes(title or land.title, "parameter x", "parameter y", ax, figsize=(6, 4))
    xs = np.linspace(*land.xlim, n_grid)
    ys = np.linspace(*land.ylim, n_grid)
    X, Y = np.meshgrid(xs, ys)
    with torch.no_grad():
        Z = land.fn(torch.from_numpy(np.stack([X, Y], -1))).numpy()
    Z = np.log10(np.clip(Z, 1e-3, None))  # log levels: the floor of a valley stays visible
    cs = ax.contourf(X, Y, Z, levels=25, cmap="Greys_r", alpha=0.8)
    ax.contour(X, Y, Z, levels=25, colors="k", linewidths=0.3, alpha=0.4)
    plt.colorbar(cs, ax=ax, label="log10 loss")
    ax.plot(*land.minimum, marker="*", color="gold", ms=14, mec="k", ls="", label="minimum")
    ax.plot(*land.start, marker="o", color="white", ms=7, mec="k", ls="", label="start")
    for i, tr in enumerate(trajectories):
        c = colors[i] if colors else f"C{i}"
        ax.plot(tr.points[:, 0], tr.points[:, 1], "-o", color=c, ms=2.5, lw=1.2, label=tr.label)
    ax.set_xlim(*land.xlim)
    ax.set_ylim(*land.ylim)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
    return ax


def plot_losses(trajectories: Sequence[Trajectory], ax=None, title: str = "Loss at each step",
                labels=None, colors=None):
    """Loss against step on a log scale, one line per trajectory, cut off above 1000x the start."""
    ax = new_axes(title, "step", "loss (log scale)", ax, figsize=(5, 4))
    top = 0.0
    for i, tr in enumerate(trajectories):
        c = colors[i] if colors else f"C{i}"
        label = labels[i] if labels else f"{tr.label}: {tr.verdict}"
        ax.plot(np.arange(len(tr.losses)), np.clip(tr.losses, 1e-12, 1e30), color=c, label=label)
        top = max(top, 1e3 * tr.losses[0])
    ax.set_yscale("log")
    ax.set_ylim(top=top or None)
    ax.legend(fontsize=7)
    return ax


def explore(landscape: str = "lopsided_valley", method: str = "gd", lr: float = 1.0,
            steps: int = 60):
    """The playground: path and loss curve of one run, and a verdict. Returns (figure, text)."""
    tr = run(landscape, method, lr, steps)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw=dict(width_ratios=[1.3, 1]))
    plot_landscape(landscape, [tr], ax=a)
    plot_losses([tr], ax=b)
    fig.tight_layout()
    end = "it blew up and was stopped" if tr.stopped_early else f"after {len(tr.losses) - 1} steps"
    text = (f"Verdict: {tr.verdict.upper()}. {METHOD_NAMES[method]} with lr={lr:.3g}: loss "
            f"{tr.losses[0]:.3g} at the start, {tr.losses[-1]:.3g} {end}.")
    return fig, text


def plot_1d_step(fn: Callable, w: float, lr: float, lo: float, hi: float, ax=None,
                 title: str = "One gradient-descent step", xlabel: str = "parameter w",
                 ylabel: str = "loss"):
    """A one-parameter loss curve, its slope at ``w`` and the step to w - lr * slope."""
    ax = new_axes(title, xlabel, ylabel, ax)
    ws = torch.linspace(lo, hi, 300, dtype=torch.float64)
    with torch.no_grad():
        ax.plot(ws, [float(fn(x)) for x in ws], color="k", label="loss(w)")
    g = float(gradient(fn, w))
    f0 = float(fn(torch.tensor(w, dtype=torch.float64)))
    dw = (hi - lo) * 0.15
    ax.plot([w - dw, w + dw], [f0 - g * dw, f0 + g * dw], color="C1", lw=2,
            label=f"slope = gradient = {g:.3g}")
    w_new = w - lr * g
    f1 = float(fn(torch.tensor(w_new, dtype=torch.float64)))
    ax.annotate("", xy=(w_new, f1), xytext=(w, f0),
                arrowprops=dict(arrowstyle="->", color="C0", lw=2))
    ax.plot([w], [f0], "o", color="C1")
    ax.plot([w_new], [f1], "o", color="C0", label=f"after one step (lr={lr:g}): w={w_new:.3g}")
    ax.legend(fontsize=8)
    return ax
