"""Loss landscapes: two-parameter functions and the optimizers that walk them.

A language model's loss is a function of all its parameters: a landscape
with one dimension per parameter. Nobody can draw a million dimensions, but
the rules of descent are the same in two, so this module keeps two:

* landscapes (``LANDSCAPES``): ``valley`` (a long, narrow quadratic bowl),
  ``lopsided_valley`` (the same valley with one wall steeper than the
  other), ``banana`` (Rosenbrock's curved valley) and ``two_basins``
  (two hollows of different depth). Each is a ``Landscape`` whose ``fn``
  maps a tensor of points (..., 2) to losses (...); every minimum is 0
  except the shallower of the two basins;
* the update rules, written out: ``gd_step``, ``momentum_step``,
  ``adam_step``. They do the same arithmetic as ``torch.optim.SGD`` (with
  ``momentum``) and ``torch.optim.Adam``; the tests check that;
* ``run(landscape, method, lr, steps)``: a ``Trajectory`` of points and
  losses, stopped early if the loss blows up;
* ``classify_run(losses)``: "slow", "good", "oscillating" or "diverging";
* the pictures of these runs are in ``viz.landscapeviz``;
* ``gradient`` (autograd) and ``finite_difference`` (nudging each
  parameter), and ``loss_along`` for a 1-D slice through a real model's
  landscape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

METHODS = ("gd", "momentum", "adam")
METHOD_NAMES = {"gd": "gradient descent", "momentum": "momentum", "adam": "Adam"}
VERDICTS = ("slow", "good", "oscillating", "diverging")


# --- the landscapes -----------------------------------------------------------
def valley(p: torch.Tensor) -> torch.Tensor:
    """A long narrow bowl: 100 times more curved across (y) than along (x). Minimum 0 at (0, 0)."""
    x, y = p[..., 0], p[..., 1]
    return 0.5 * (0.01 * x**2 + y**2)


def lopsided_valley(p: torch.Tensor) -> torch.Tensor:
    """A valley with an uneven cross-section: the wall at y > 0 rises exponentially.

    Near the floor it is a bowl 20 times more curved across (y) than along
    (x); further out, the y > 0 wall is much steeper than the y < 0 one.
    """
    x, y = p[..., 0], p[..., 1]
    return 0.5 * 0.05 * x**2 + (torch.exp(2 * y) - 1 - 2 * y) / 4


def banana(p: torch.Tensor) -> torch.Tensor:
    """Rosenbrock's function: a curved, flat-bottomed valley. Minimum 0 at (1, 1)."""
    x, y = p[..., 0], p[..., 1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


_TWO_BASINS_SHIFT = 0.30543  # makes the deeper minimum (near x = -1.036) 0


def two_basins(p: torch.Tensor) -> torch.Tensor:
    """Two hollows: a deep one near (-1, 0) and a shallower one near (1, 0)."""
    x, y = p[..., 0], p[..., 1]
    return (x**2 - 1) ** 2 + 0.3 * x + y**2 + _TWO_BASINS_SHIFT


@dataclass(frozen=True)
class Landscape:
    """A two-parameter loss function with what is needed to draw and descend it."""

    name: str
    title: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    start: tuple[float, float]
    minimum: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    lrs: dict = field(default_factory=dict)  # a learning rate that works, per method

    def loss(self, point) -> float:
        return float(self.fn(torch.as_tensor(point, dtype=torch.float64)))


LANDSCAPES: dict[str, Landscape] = {
    "valley": Landscape("valley", "A long, narrow valley", valley, (-4.5, -1.5), (0.0, 0.0),
                        (-5.0, 5.0), (-2.0, 2.0),
                        dict(gd=1.5, momentum=0.2, adam=0.3)),
    "lopsided_valley": Landscape("lopsided_valley", "A lopsided valley (one wall steeper)",
                                 lopsided_valley, (-4.5, -1.5), (0.0, 0.0), (-5.0, 5.0),
                                 (-2.0, 2.0), dict(gd=1.0, momentum=0.2, adam=0.3)),
    "banana": Landscape("banana", "Rosenbrock's banana valley", banana, (-1.5, 2.0), (1.0, 1.0),
                        (-2.0, 2.0), (-1.0, 3.0), dict(gd=1.5e-3, momentum=2e-4, adam=0.1)),
    "two_basins": Landscape("two_basins", "Two basins, one deeper", two_basins, (1.8, 1.5),
                            (-1.0356, 0.0), (-2.0, 2.2), (-1.6, 1.8),
                            dict(gd=0.02, momentum=0.02, adam=0.1)),
}


def get_landscape(landscape: str | Landscape) -> Landscape:
    if isinstance(landscape, Landscape):
        return landscape
    if landscape not in LANDSCAPES:
        raise ValueError(f"unknown landscape {landscape!r}; choose one of {list(LANDSCAPES)}")
    return LANDSCAPES[landscape]


# --- gradients ----------------------------------------------------------------
def gradient(fn: Callable, point) -> torch.Tensor:
    """d fn / d point by autograd (float64)."""
    p = torch.as_tensor(point, dtype=torch.float64).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(p), p)
    return g


def finite_difference(fn: Callable, point, h: float = 1e-5) -> torch.Tensor:
    """The gradient estimated by nudging each parameter by +-h: (f(p + h) - f(p - h)) / 2h."""
    p = torch.as_tensor(point, dtype=torch.float64)
    g = torch.zeros_like(p)
    with torch.no_grad():
        for i in range(p.numel()):
            e = torch.zeros_like(p).flatten()
            e[i] = h
            e = e.view_as(p)
            g.view(-1)[i] = (fn(p + e) - fn(p - e)) / (2 * h)
    return g


# --- the update rules, by hand ------------------------------------------------
def gd_step(p: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
    """Plain gradient descent: step downhill, lr times the gradient."""
    return p - lr * grad


def momentum_step(p, grad, velocity, lr: float, beta: float = 0.9):
    """Heavy-ball momentum, as torch.optim.SGD(momentum=beta) does it.

    The velocity is a running sum of gradients that forgets a share 1 - beta
    each step: v <- beta v + grad; p <- p - lr v. Returns (p, v).
    """
    velocity = beta * velocity + grad
    return p - lr * velocity, velocity


def adam_step(p, grad, m, v, t: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
    """One Adam step (Kingma & Ba 2015), as torch.optim.Adam does it; t counts from 1.

    m: running mean of gradients; v: running mean of squared gradients. Each
    parameter moves by about lr * mean / typical size of its gradient, so a
    steep direction and a flat one take steps of similar length. Returns (p, m, v).
    """
    b1, b2 = betas
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad**2
    m_hat = m / (1 - b1**t)  # undo the pull towards the zeros m and v start from
    v_hat = v / (1 - b2**t)
    return p - lr * m_hat / (v_hat.sqrt() + eps), m, v


@dataclass
class Trajectory:
    """Where an optimizer went: points (n, 2) and the loss at each, start included."""

    method: str
    lr: float
    points: np.ndarray
    losses: np.ndarray
    stopped_early: bool = False  # the loss blew up before the last step

    @property
    def verdict(self) -> str:
        return classify_run(self.losses)

    @property
    def label(self) -> str:
        return f"{METHOD_NAMES[self.method]}, lr={self.lr:.3g}"


def run(landscape: str | Landscape, method: str = "gd", lr: float | None = None,
        steps: int = 60, start=None, **options) -> Trajectory:
    """Descend ``landscape`` for ``steps`` steps with ``method`` from ``start``.

    lr defaults to the landscape's suggestion for the method; ``options`` go to
    ``run_many`` (beta, betas, eps, blowup).
    """
    land = get_landscape(landscape)
    lr = land.lrs.get(method) if lr is None else lr
    return run_many(land, method, [lr], steps, start, **options)[0]


def run_many(landscape: str | Landscape, method: str, lrs: Sequence[float], steps: int = 60,
             start=None, beta: float = 0.9, betas=(0.9, 0.999), eps: float = 1e-8,
             blowup: float = 1e6) -> list[Trajectory]:
    """One run per learning rate in ``lrs``, all from the same start, computed side by side.

    A run stops (its trajectory ends) once its loss is non-finite or
    ``blowup`` times above where it started.
    """
    land = get_landscape(landscape)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    lrs = [float(x) for x in lrs]
    if not lrs or not all(x > 0 and math.isfinite(x) for x in lrs):
        raise ValueError(f"learning rates must be positive numbers, got {lrs!r}")
    n = len(lrs)
    lr = torch.tensor(lrs, dtype=torch.float64)[:, None]  # (n, 1): one per run
    p = torch.tensor(land.start if start is None else start, dtype=torch.float64).repeat(n, 1)
    vel, m, v = torch.zeros_like(p), torch.zeros_like(p), torch.zeros_like(p)
    points, losses = [p.clone()], []
    alive = torch.ones(n, dtype=torch.bool)
    ends = [steps] * n  # index of each run's last step
    for t in range(1, steps + 2):
        q = p.clone().requires_grad_(True)
        loss = land.fn(q)  # (n,): the runs are independent, so the gradient of the
        (g,) = torch.autograd.grad(loss.sum(), q)  # sum is each run's own gradient
        loss = loss.detach()
        losses.append(loss)
        bad = ~torch.isfinite(loss) | (loss > blowup * losses[0].abs().clamp(min=1e-12))
        for i in torch.nonzero(alive & bad).flatten().tolist():
            ends[i] = t - 1
        alive &= ~bad
        if t > steps or not bool(alive.any()):
            break
        if method == "gd":
            new = gd_step(p, g, lr)
        elif method == "momentum":
            new, vel = momentum_step(p, g, vel, lr, beta)
        else:
            new, m, v = adam_step(p, g, m, v, t, lr, betas, eps)
        p = torch.where(alive[:, None], new, p)
        points.append(p.clone())
    P = torch.stack(points).numpy()  # (steps + 1, n, 2)
    Ls = torch.stack(losses).numpy()  # (steps + 1, n)
    return [Trajectory(method, lrs[i], P[: ends[i] + 1, i], Ls[: ends[i] + 1, i],
                       ends[i] < steps) for i in range(n)]


def steps_to_reach(losses: Sequence[float], target: float) -> int | None:
    """The first step from which the loss stays below ``target`` (None: never)."""
    L = np.asarray(losses, dtype=np.float64)
    above = np.nonzero(~(L < target))[0]  # NaN counts as above
    if len(above) == 0:
        return 0
    first_below_for_good = above[-1] + 1
    return int(first_below_for_good) if first_below_for_good < len(L) else None


def best_lr(landscape: str | Landscape, method: str, lrs: Sequence[float], steps: int,
            target: float) -> tuple[float | None, int | None]:
    """The learning rate in ``lrs`` that gets below ``target`` for good in the fewest steps.

    Returns (lr, steps needed), or (None, None) if none of them gets there.
    """
    best: tuple[float | None, int | None] = (None, None)
    for tr in run_many(landscape, method, lrs, steps):
        n = steps_to_reach(tr.losses, target)
        if n is not None and (best[1] is None or n < best[1]):
            best = (tr.lr, n)
    return best


# --- verdicts -----------------------------------------------------------------
RISE_TOL = 1e-3  # a step "rises" if the loss goes up by more than this share of the start gap
BOUNCE_SHARE = 0.1  # oscillating: at least this share of the steps rise
GOOD_SHARE = 0.01  # good: at most this share of the start gap is left at the end


def classify_run(losses: Sequence[float], floor: float = 0.0) -> str:
    """Name what a run did, from its loss curve alone (start included).

    ``floor`` is the lowest loss possible (0 for the course landscapes); the
    gap is the distance from a loss to it. The rules, first match wins:

    1. "diverging": a loss is NaN or infinite, or the last loss is above the first.
    2. "oscillating": the loss rose (by more than RISE_TOL = 0.1% of the
       starting gap) on at least BOUNCE_SHARE = 10% of the steps.
    3. "slow": more than GOOD_SHARE = 1% of the starting gap is left at the end.
    4. "good": otherwise.

    On a perfectly symmetric bowl a zigzag across the valley never makes the
    loss rise, so a curve alone cannot reveal it; on a lopsided wall it does.
    """
    L = np.asarray(losses, dtype=np.float64)
    if L.ndim != 1 or len(L) < 2:
        raise ValueError("classify_run needs a 1-D sequence of at least two losses")
    if not np.all(np.isfinite(L)) or L[-1] > L[0]:
        return "diverging"
    gap = L[0] - floor
    rises = np.diff(L) > RISE_TOL * gap
    if rises.mean() >= BOUNCE_SHARE:
        return "oscillating"
    if L[-1] - floor > GOOD_SHARE * gap:
        return "slow"
    return "good"


# --- a slice through a real model's landscape -------------------------------------
@torch.no_grad()
def loss_along(model: torch.nn.Module, loss_at: Callable[[torch.nn.Module], torch.Tensor],
               direction: Sequence[torch.Tensor], distances: Sequence[float]) -> list[float]:
    """loss(theta + d * direction) for each d: a 1-D slice through a many-dimensional landscape.

    ``direction`` has one tensor per parameter (e.g. the gradients). The
    model's parameters are restored afterwards.
    """
    params = [p for p in model.parameters()]
    if len(params) != len(direction):
        raise ValueError("direction needs one tensor per model parameter")
    saved = [p.detach().clone() for p in params]
    out = []
    try:
        for d in distances:
            for p, p0, u in zip(params, saved, direction):
                p.copy_(p0 + d * u)
            out.append(float(loss_at(model)))
    finally:
        for p, p0 in zip(params, saved):
            p.copy_(p0)
    return out
