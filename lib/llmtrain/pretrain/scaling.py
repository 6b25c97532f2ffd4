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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
