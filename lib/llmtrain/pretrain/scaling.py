"""Scaling laws and the cost of training: power-law fits, 6ND and GPU-days.

Kaplan et al. (2020) and Hoffmann et al. (2022, "Chinchilla") found that the
loss of a language model falls as a power law of its size N (non-embedding
parameters), its data D (tokens) and its compute C:

    L(N) = a * N ** -alpha            (+ an irreducible floor E, optionally)

A power law is a straight line on log-log axes: log L = log a - alpha log N.
``fit_power_law`` fits that line by least squares and reports R^2 in the same
log-log space, the goodness of a straight line there.

The floor is optional. Real text has an entropy no model can beat, so the
full law is ``E + a N^-alpha``; over the narrow range of sizes a CPU can train,
the pure power law (``floor=0``) usually fits well. Pass ``floor=E`` if you
know it, or ``floor="fit"`` to pick the E (between 0 and just below the smallest
loss) that makes log(L - E) straightest.

The cost side: one training token costs about 6 FLOPs per parameter (2 for
the forward pass's multiply-adds, 4 for the backward pass), so training a
model of N parameters on D tokens costs ``training_flops(N, D) = 6 N D``
(Kaplan et al. 2020, section 2.1; attention adds a little that 6ND leaves out).
``gpu_days`` turns FLOPs into time on a GPU under stated assumptions, and
``REAL_RUNS`` lists published training runs to apply it to.

The IsoFLOP experiment (Hoffmann et al. 2022, their "approach 2" and "approach 3"):
fix a compute budget C, train several sizes N on D = C / (6 N) tokens each (a
full learning-rate schedule per run), and find the size with the lowest loss.
``train_point`` trains one such run and ``run_sweep`` a grid of them;
``isoflop_minimum`` fits a parabola in log N through one budget's losses to
locate its optimum N*; ``fit_loss_law`` fits ``L = E + A N^-alpha`` (or, given
D, ``L = E + A N^-alpha + B D^-beta``) by a grid over the exponents and linear
least squares for E, A, B. The course's stored sweep is built by
``python benchmarks/build_scaling_sweep.py`` (it needs the course's data, which
this module may not import).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core.batches import LMBatches, evaluate_loss
from ..core.model import GPT, GPTConfig
from ..core.train import TrainConfig, Trainer

# --- assumptions for turning FLOPs into GPU time (stated, not measured) -------
H100_BF16_DENSE_FLOPS = 989e12  # NVIDIA H100 SXM, bf16 tensor cores, dense (no sparsity): FLOP/s
DEFAULT_UTILIZATION = 0.40  # model FLOPs utilisation; Llama 3 405B reported 38-43% (MFU)
DEFAULT_DOLLARS_PER_GPU_HOUR = 2.0  # an assumed rental price for one H100 (2024-2025 range ~$2-4)


# --- fitting ----------------------------------------------------------------
@dataclass(frozen=True)
class PowerLawFit:
    """``L(x) = floor + a * x ** -alpha``, fitted in log-log space."""

    a: float
    alpha: float  # positive when the loss falls with x
    floor: float  # the constant E (0 for a pure power law)
    r2: float  # R^2 of the straight line log(L - floor) vs log x
    n_points: int

    def __call__(self, x):
        """The law's prediction at ``x`` (a number or an array)."""
        x = np.asarray(x, dtype=float)
        y = self.floor + self.a * x ** -self.alpha
        return float(y) if y.ndim == 0 else y

    def x_for(self, loss: float) -> float:
        """The x at which the law predicts ``loss`` (inverse of ``__call__``)."""
        if loss <= self.floor:
            raise ValueError(f"the law never reaches loss {loss} (its floor is {self.floor:.3g})")
        return ((loss - self.floor) / self.a) ** (-1.0 / self.alpha)

    def __str__(self) -> str:
        floor = f"{self.floor:.3g} + " if self.floor else ""
        return f"L = {floor}{self.a:.3g} * N^-{self.alpha:.3f}  (R^2 = {self.r2:.3f})"


def r_squared(y, y_hat) -> float:
    """Coefficient of determination: 1 - SS_residual / SS_total (1 is a perfect fit)."""
    y, y_hat = np.asarray(y, dtype=float), np.asarray(y_hat, dtype=float)
    ss_res = float(np.sum((y - y_hat) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def _line_fit(x, y, floor: float) -> PowerLawFit:
    lx, ly = np.log(x), np.log(y - floor)
    slope, intercept = np.polyfit(lx, ly, 1)
    r2 = r_squared(ly, slope * lx + intercept)
    return PowerLawFit(a=float(math.exp(intercept)), alpha=float(-slope), floor=float(floor),
                       r2=r2, n_points=len(x))


def fit_power_law(x, y, floor: float | str = 0.0) -> PowerLawFit:
    """Fit ``y = floor + a * x^-alpha`` by least squares on log x, log(y - floor).

    floor: 0 (a pure power law, the default), a known constant, or "fit" to
    choose the constant that maximises R^2 (searched on a grid from 0 to 99.9%
    of min(y), then refined). Needs at least 3 points with x > 0 and y > floor.
    """
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if len(x) < 3:
        raise ValueError(f"need at least 3 points to fit and judge a power law, got {len(x)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite numbers")
    if np.any(x <= 0):
        raise ValueError("x must be positive (a size, a token count or a FLOP count)")
    if len(np.unique(x)) < 2:
        raise ValueError("x must take at least two different values")
    if floor == "fit":
        top = float(y.min())
        if top <= 0:
            raise ValueError("floor='fit' needs positive y values")
        grid = np.linspace(0.0, 0.999 * top, 200)
        best = max(grid, key=lambda e: _line_fit(x, y, e).r2)
        step = grid[1] - grid[0]
        fine = np.clip(np.linspace(best - step, best + step, 101), 0.0, 0.999 * top)
        best = max(fine, key=lambda e: _line_fit(x, y, e).r2)
        return _line_fit(x, y, float(best))
    if isinstance(floor, str) or not math.isfinite(floor) or floor < 0:
        raise ValueError(f"floor must be a number >= 0 or 'fit', got {floor!r}")
    if np.any(y <= floor):
        raise ValueError(f"every y must be above the floor {floor} (the log of y - floor is taken)")
    return _line_fit(x, y, float(floor))


# --- cost ---------------------------------------------------------------------
def training_flops(n_params: float, n_tokens: float) -> float:
    """About 6 * N * D floating-point operations to train N parameters on D tokens."""
    if n_params < 0 or n_tokens < 0:
        raise ValueError("n_params and n_tokens must be >= 0")
    return 6.0 * float(n_params) * float(n_tokens)


def gpu_seconds(flops: float, flops_per_second: float = H100_BF16_DENSE_FLOPS,
                utilization: float = DEFAULT_UTILIZATION) -> float:
    """Seconds one GPU needs for ``flops`` at ``utilization`` of its peak ``flops_per_second``."""
    if flops < 0:
        raise ValueError("flops must be >= 0")
    if flops_per_second <= 0 or not 0 < utilization <= 1:
        raise ValueError("flops_per_second must be > 0 and utilization in (0, 1]")
    return flops / (flops_per_second * utilization)


def gpu_days(flops: float, flops_per_second: float = H100_BF16_DENSE_FLOPS,
             utilization: float = DEFAULT_UTILIZATION) -> float:
    """GPU-days (one GPU for one day = 1) to compute ``flops``; see ``gpu_seconds``."""
    return gpu_seconds(flops, flops_per_second, utilization) / 86_400


def training_cost(flops: float, n_gpus: int = 1, flops_per_second: float = H100_BF16_DENSE_FLOPS,
                  utilization: float = DEFAULT_UTILIZATION,
                  dollars_per_gpu_hour: float = DEFAULT_DOLLARS_PER_GPU_HOUR) -> dict:
    """GPU-days, wall-clock days on ``n_gpus`` and rental dollars for a run of ``flops``.

    All three follow from the stated assumptions (peak FLOP/s, utilisation,
    price); real runs also lose time to failures, restarts and evaluation.
    """
    if n_gpus < 1:
        raise ValueError("n_gpus must be >= 1")
    days = gpu_days(flops, flops_per_second, utilization)
    return {"gpu_days": days, "wall_days": days / n_gpus,
            "dollars": days * 24 * dollars_per_gpu_hour}


@dataclass(frozen=True)
class TrainingRun:
    """A published pretraining run: size, data, and what the paper reported."""

    name: str
    n_params: float  # parameters
    n_tokens: float  # training tokens
    year: int
    reported_flops: float | None = None  # as stated by the authors, if they did
    reported_gpu_hours: float | None = None  # GPU-hours the authors reported, if they did
    hardware: str = ""
    source: str = ""

    @property
    def flops(self) -> float:
        """The 6ND estimate."""
        return training_flops(self.n_params, self.n_tokens)


REAL_RUNS: tuple[TrainingRun, ...] = (
    TrainingRun("GPT-3 175B", 175e9, 300e9, 2020, reported_flops=3.14e23,
                hardware="V100 GPUs", source="Brown et al. 2020, Table D.1"),
    TrainingRun("Chinchilla 70B", 70e9, 1.4e12, 2022, reported_flops=5.76e23,
                hardware="TPU v3/v4", source="Hoffmann et al. 2022, Table 3"),
    TrainingRun("Llama 2 70B", 70e9, 2.0e12, 2023, reported_gpu_hours=1.72e6,
                hardware="A100 GPUs", source="Touvron et al. 2023, Table 2"),
    TrainingRun("Llama 3 405B", 405e9, 15.6e12, 2024, reported_flops=3.8e25,
                reported_gpu_hours=30.84e6, hardware="up to 16,384 H100 GPUs",
                source="Dubey et al. 2024 (the Llama 3 paper) and its model card"),
)


def real_runs_table(utilization: float = DEFAULT_UTILIZATION,
                    flops_per_second: float = H100_BF16_DENSE_FLOPS,
                    n_gpus: int = 16_384,
                    dollars_per_gpu_hour: float = DEFAULT_DOLLARS_PER_GPU_HOUR) -> list[dict]:
    """One row per run in ``REAL_RUNS``: 6ND FLOPs and what they cost on H100s today.

    Every run is priced as if it ran on ``n_gpus`` H100s at ``utilization``
    (the older runs used older hardware, so their real GPU-days were more).
    """
    rows = []
    for run in REAL_RUNS:
        cost = training_cost(run.flops, n_gpus, flops_per_second, utilization,
                             dollars_per_gpu_hour)
        rows.append({"name": run.name, "year": run.year, "params": run.n_params,
                     "tokens": run.n_tokens, "tokens_per_param": run.n_tokens / run.n_params,
                     "flops_6nd": run.flops, "reported_flops": run.reported_flops,
                     "reported_gpu_hours": run.reported_gpu_hours, **cost})
    return rows


# --- the IsoFLOP experiment -------------------------------------------------------
def model_params(vocab_size: int, block_size: int, n_layer: int, n_embd: int) -> int:
    """All parameters of a course GPT (tied output layer counted once), without building it.

    Token and position embeddings (V C + T C), then per block 12 C^2 weights (4 C^2 in
    attention, 8 C^2 in the MLP) and two LayerNorm gains (2 C), then the final
    LayerNorm (C).
    """
    c = n_embd
    return vocab_size * c + block_size * c + n_layer * (12 * c * c + 2 * c) + c


def steps_for_budget(flops: float, n_params: int, tokens_per_step: int) -> int:
    """Optimizer steps that spend ``flops`` = 6 N D on a model of ``n_params`` (at least 1)."""
    if flops <= 0 or n_params <= 0 or tokens_per_step <= 0:
        raise ValueError("flops, n_params and tokens_per_step must be > 0")
    return max(1, round(flops / (6.0 * n_params) / tokens_per_step))


def train_point(tokens: torch.Tensor, heldout: torch.Tensor, vocab_size: int, n_layer: int,
                n_embd: int, flops: float, *, block_size: int = 64, batch_size: int = 16,
                lr: float = 3e-3, seed: int = 0, device: str = "cpu",
                eval_windows: int = 96) -> dict:
    """Train one GPT of ``n_layer`` x ``n_embd`` on D = flops / (6 N) tokens; its held-out loss.

    A full warmup-and-cosine schedule over exactly those steps (Hoffmann et al. found
    that a schedule longer than the run makes the run look worse than it is). The
    batches cycle through ``tokens`` (more than one epoch when D exceeds its length).
    Returns a plain dict (JSON-ready) describing the run.
    """

    n_params = model_params(vocab_size, block_size, n_layer, n_embd)
    steps = steps_for_budget(flops, n_params, block_size * batch_size)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                          n_head=max(1, n_embd // 32), n_embd=n_embd))
    assert model.num_params() == n_params, "model_params disagrees with the model"
    cfg = TrainConfig(max_steps=steps, lr=lr, device=device, seed=seed, progress=False)
    hist = Trainer(model, LMBatches(tokens, block_size, batch_size, seed=seed), cfg).fit()
    d = hist.tokens[-1]
    return {"shape": f"{n_layer} x {n_embd}", "n_layer": n_layer, "n_embd": n_embd,
            "n_params": n_params, "n_params_non_embedding": model.num_params(non_embedding=True),
            "budget": float(flops), "flops": training_flops(n_params, d), "tokens": int(d),
            "steps": steps, "tokens_per_param": d / n_params, "epochs": d / len(tokens),
            "seed": seed, "train_loss": float(hist.loss[-1]),
            "heldout_loss": float(evaluate_loss(model, heldout, max_windows=eval_windows)),
            "seconds": float(hist.seconds)}


def run_sweep(tokens: torch.Tensor, heldout: torch.Tensor, vocab_size: int,
              budgets: Sequence[float], widths: Sequence[int], *, n_layer: int = 2,
              seeds: Sequence[int] = (0,), repeat_budgets: Sequence[float] = (),
              repeat_seeds: Sequence[int] = (), repeat_widths: Sequence[int] | None = None,
              min_steps: int = 10, max_steps: int | None = None,
              log: Callable[[str], None] | None = print, **train_kw) -> dict:
    """An IsoFLOP grid: every width at every budget.

    Runs of fewer than ``min_steps`` steps (too big a model for the budget) and of more
    than ``max_steps`` (too small a model: the slowest runs) are left out.

    ``repeat_seeds`` retrains the runs of ``repeat_budgets`` (of the widths in
    ``repeat_widths``; None: all) with other seeds, to measure how much the loss moves
    from seed to seed. Returns the settings and
    one dict per run (see ``train_point``).
    """
    start = time.perf_counter()
    block, batch = train_kw.get("block_size", 64), train_kw.get("batch_size", 16)
    runs = []
    for flops in budgets:
        for width in widths:
            n = model_params(vocab_size, block, n_layer, width)
            steps = steps_for_budget(flops, n, block * batch)
            if steps < min_steps or (max_steps is not None and steps > max_steps):
                continue
            again = flops in repeat_budgets and (repeat_widths is None or width in repeat_widths)
            for seed in list(seeds) + (list(repeat_seeds) if again else []):
                run = train_point(tokens, heldout, vocab_size, n_layer, width, flops, seed=seed,
                                  **train_kw)
                runs.append(run)
                if log:
                    log(f"C = {flops:.1e}  {run['shape']:>8}  N = {n:>7,}  D = {run['tokens']:>9,} "
                        f"({run['tokens_per_param']:5.1f} / param, {run['epochs']:4.1f} epochs) "
                        f"seed {seed}: held-out {run['heldout_loss']:.3f} "
                        f"({run['seconds']:.0f} s)")
    return {"budgets": [float(b) for b in budgets], "widths": list(widths), "n_layer": n_layer,
            "min_steps": min_steps, "max_steps": max_steps,
            "vocab_size": vocab_size, "corpus_tokens": len(tokens), "heldout_tokens": len(heldout),
            "train": {k: v for k, v in train_kw.items() if k != "device"},
            "seconds": time.perf_counter() - start, "runs": runs}


@dataclass(frozen=True)
class IsoFLOPMinimum:
    """The loss-optimal size at one budget, from a parabola in log N through its runs."""

    budget: float
    n_opt: float  # N* (parameters)
    d_opt: float  # D* = budget / (6 N*)
    loss_opt: float  # the parabola's minimum
    interior: bool  # the measured minimum is not at the smallest or largest size
    curvature: float  # the parabola's coefficient of (log N)^2 (> 0: a valley)
    parabola: tuple[float, float, float] = (0.0, 0.0, 0.0)  # a, b, c of a (log N)^2 + b log N + c

    def curve(self, n):
        """The fitted parabola's loss at size(s) ``n``."""
        a, b, c = self.parabola
        x = np.log(np.asarray(n, dtype=float))
        return a * x**2 + b * x + c

    @property
    def tokens_per_param(self) -> float:
        return self.d_opt / self.n_opt


def isoflop_minimum(n_params, losses, budget: float) -> IsoFLOPMinimum:
    """Fit ``L = a (log N)^2 + b log N + c`` to one budget's runs; its vertex is N*.

    Hoffmann et al. (2022, approach 2) did the same on their IsoFLOP curves. Needs
    at least 3 sizes; the vertex is trusted only when the parabola opens upward and
    the lowest measured loss is not at either end (``interior``).
    """
    n, y = np.asarray(n_params, dtype=float), np.asarray(losses, dtype=float)
    if n.shape != y.shape or len(n) < 3 or len(np.unique(n)) < 3:
        raise ValueError("need at least 3 different sizes, each with one loss")
    order = np.argsort(n)
    n, y = n[order], y[order]
    a, b, c = np.polyfit(np.log(n), y, 2)
    i = int(np.argmin(y))
    interior = 0 < i < len(y) - 1
    if a > 0:
        log_opt = -b / (2 * a)
        log_opt = float(np.clip(log_opt, np.log(n[0]), np.log(n[-1])))
    else:
        log_opt = float(np.log(n[i]))
    n_opt = math.exp(log_opt)
    return IsoFLOPMinimum(budget=float(budget), n_opt=n_opt, d_opt=budget / (6 * n_opt),
                          loss_opt=float(a * log_opt**2 + b * log_opt + c), interior=interior,
                          curvature=float(a), parabola=(float(a), float(b), float(c)))


@dataclass(frozen=True)
class LossLaw:
    """``L(N, D) = E + A N^-alpha + B D^-beta`` (B = 0: the size-only law ``E + A N^-alpha``)."""

    E: float  # the irreducible loss: what no size or amount of data removes
    A: float
    alpha: float
    B: float = 0.0
    beta: float = 0.0
    r2: float = 0.0  # R^2 of the fit, on the losses themselves
    n_points: int = 0

    def __call__(self, n, d=None):
        """Predicted loss at size ``n`` (and ``d`` tokens, if the law has a data term)."""
        n = np.asarray(n, dtype=float)
        y = self.E + self.A * n ** -self.alpha
        if self.B:
            if d is None:
                raise ValueError("this law has a data term: give d (tokens) too")
            y = y + self.B * np.asarray(d, dtype=float) ** -self.beta
        return float(y) if np.ndim(y) == 0 else y

    def optimal_n(self, flops):
        """The N that minimises the loss at compute ``flops`` = 6 N D (needs the data term)."""
        if not self.B:
            raise ValueError("the size-only law has no optimum: more N is always better")
        # d/dN [A N^-alpha + B (C / 6N)^-beta] = 0  =>  N = G (C/6)^(beta / (alpha + beta))
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        return g * (np.asarray(flops, dtype=float) / 6) ** (self.beta / (self.alpha + self.beta))

    def __str__(self) -> str:
        data = f" + {self.B:.3g} D^-{self.beta:.3f}" if self.B else ""
        return f"L = {self.E:.3f} + {self.A:.3g} N^-{self.alpha:.3f}{data}  (R^2 = {self.r2:.3f})"


def _linear_fit(columns: list[np.ndarray], y: np.ndarray):
    """Least squares for y = sum_k c_k column_k with every c_k >= 0 (None if impossible)."""
    x = np.stack(columns, axis=1)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    if np.all(coef >= 0):
        return coef, float(np.sum((x @ coef - y) ** 2))
    return None


def fit_loss_law(n, losses, d=None, alphas=None, betas=None) -> LossLaw:
    """Fit ``L = E + A N^-alpha`` (or, with ``d``, ``+ B D^-beta``) to measured losses.

    For fixed exponents the law is linear in E, A (and B), so least squares solves
    for them exactly; the exponents are chosen on a grid (default 0.02 to 2 in
    steps of 0.02), then refined on a 10x finer grid around the best. E, A and B
    must come out >= 0 (a negative floor or coefficient has no meaning here).
    Needs at least one more point than parameters.
    """
    n, y = np.asarray(n, dtype=float).ravel(), np.asarray(losses, dtype=float).ravel()
    with_d = d is not None
    d = None if d is None else np.asarray(d, dtype=float).ravel()
    k = 5 if with_d else 3
    if n.shape != y.shape or (with_d and d.shape != n.shape):
        raise ValueError("n, losses (and d) must have the same length")
    if len(n) <= k:
        raise ValueError(f"need more than {k} points to fit {k} parameters, got {len(n)}")
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(y))) or np.any(n <= 0) or (
            with_d and (not np.all(np.isfinite(d)) or np.any(d <= 0))):
        raise ValueError("n (and d) must be positive, losses finite")
    if len(np.unique(n)) < 3:
        raise ValueError("n must take at least 3 different values")
    alphas = np.arange(0.02, 2.001, 0.02) if alphas is None else np.asarray(alphas, dtype=float)
    betas = (np.arange(0.02, 2.001, 0.02) if betas is None else np.asarray(betas, dtype=float)
             ) if with_d else np.zeros(1)
    one = np.ones_like(y)

    def search(a_grid, b_grid):
        best = None
        for a in a_grid:
            for b in b_grid:
                cols = [one, n ** -a] + ([d ** -b] if with_d else [])
                got = _linear_fit(cols, y)
                if got is not None and (best is None or got[1] < best[0]):
                    best = (got[1], a, b, got[0])
        return best

    best = search(alphas, betas)
    if best is None:
        raise ValueError("no law with E, A, B >= 0 fits these losses (do they fall with N?)")
    step_a = float(np.diff(alphas).min()) if len(alphas) > 1 else 0.0
    step_b = float(np.diff(betas).min()) if with_d and len(betas) > 1 else 0.0
    fine_a = np.clip(np.linspace(best[1] - step_a, best[1] + step_a, 21), 1e-3, None)
    fine_b = np.clip(np.linspace(best[2] - step_b, best[2] + step_b, 21), 1e-3, None
                     ) if with_d else np.zeros(1)
    best = min(best, search(fine_a, fine_b) or best, key=lambda t: t[0])
    sse, alpha, beta, coef = best
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - sse / ss_tot if ss_tot else 1.0
    return LossLaw(E=float(coef[0]), A=float(coef[1]), alpha=float(alpha),
                   B=float(coef[2]) if with_d else 0.0, beta=float(beta) if with_d else 0.0,
                   r2=r2, n_points=len(y))


def load_sweep(path) -> dict:
    """A stored sweep (the JSON that ``benchmarks/build_scaling_sweep.py`` writes)."""
    import json
    from pathlib import Path

    return json.loads(Path(path).read_text())
