"""What data-parallel training costs in communication, and when it becomes the bottleneck.

Every step, each of N workers holds a gradient of P values (one per parameter)
and all of them need the sum. Two ways to get it:

* **naive** (a "parameter server"): everyone sends its gradient to worker 0,
  which adds them up and sends the sum back. Worker 0's link carries
  2 (N - 1) P values per step: it grows with N, so adding workers slows
  every step down.
* **ring all-reduce**: the workers sit in a ring and each gradient is cut into
  N chunks. In N - 1 steps of *reduce-scatter* each worker passes one chunk
  to its neighbour and adds the chunk it receives, until each worker owns the
  full sum of one chunk; in N - 1 steps of *all-gather* the summed chunks go
  round the ring. Each worker sends (and receives) 2 (N - 1) / N * P values:
  less than 2P, however many workers there are.

Time follows the alpha-beta model: a message costs a fixed latency alpha plus
its bytes over the link bandwidth beta; the ring sends 2 (N - 1) messages per
worker, so

    t_ring = 2 (N - 1) * alpha + 2 (N - 1) / N * bytes / beta.

``data_parallel_scaling`` sets that against the compute of one step. With a
fixed global batch (the usual case: the batch cannot grow forever without
hurting the model) each worker's compute shrinks as 1/N while the
all-reduce does not, so communication takes over as workers are added.
References: Patarasuk and Yuan 2009 (bandwidth-optimal all-reduce);
Sergeev and Del Balso 2018 (Horovod); Li et al. 2020 (PyTorch DDP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Links between workers: (bandwidth in bytes/s per direction, latency in s per message).
# Bandwidths are nominal vendor rates (real all-reduce "bus bandwidth" lands below them);
# latencies are rough, assumed figures for one message including software overhead.
INTERCONNECTS: dict[str, tuple[float, float]] = {
    "1 Gb/s Ethernet": (1e9 / 8, 50e-6),
    "100 Gb/s Ethernet": (100e9 / 8, 10e-6),
    "PCIe 4.0 x16": (32e9, 5e-6),
    "InfiniBand NDR (400 Gb/s)": (400e9 / 8, 5e-6),
    "NVLink 4 (H100, per direction)": (450e9, 3e-6),
}


def _check_workers(n_workers) -> None:
    if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise ValueError(f"n_workers must be a whole number >= 1, got {n_workers!r}")


def _check_positive(name: str, value, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number {rule}, got {value!r}")


def ring_all_reduce_bytes(n_values: int, n_workers: int, bytes_per_value: int = 4) -> float:
    """Bytes each worker sends (and receives) in one ring all-reduce: 2 (N-1)/N * P * b."""
    _check_workers(n_workers)
    _check_positive("n_values", n_values, allow_zero=True)
    _check_positive("bytes_per_value", bytes_per_value)
    return 2 * (n_workers - 1) / n_workers * n_values * bytes_per_value


def naive_all_reduce_bytes(n_values: int, n_workers: int, bytes_per_value: int = 4) -> float:
    """Bytes through the busiest worker (worker 0) when it gathers, sums and sends back:
    it receives N - 1 gradients and sends N - 1 sums, 2 (N-1) * P * b in all."""
    _check_workers(n_workers)
    _check_positive("n_values", n_values, allow_zero=True)
    _check_positive("bytes_per_value", bytes_per_value)
    return 2 * (n_workers - 1) * n_values * bytes_per_value


def all_reduce_seconds(n_bytes: float, n_workers: int, bandwidth: float,
                       latency: float = 0.0) -> float:
    """Ring all-reduce time of a buffer of ``n_bytes`` (alpha-beta model).

    bandwidth: bytes per second of one link (beta); latency: seconds per
    message (alpha). One worker needs no communication at all.
    """
    _check_workers(n_workers)
    _check_positive("n_bytes", n_bytes, allow_zero=True)
    _check_positive("bandwidth", bandwidth)
    _check_positive("latency", latency, allow_zero=True)
    if n_workers == 1:
        return 0.0
    steps = 2 * (n_workers - 1)
    return steps * latency + steps / n_workers * n_bytes / bandwidth


def fit_alpha_beta(n_bytes: Sequence[float], seconds: Sequence[float], n_workers: int
                   ) -> tuple[float, float]:
    """Fit (latency alpha in s, bandwidth beta in B/s) of ``all_reduce_seconds`` to timings.

    A least-squares line through seconds = 2(N-1) alpha + 2(N-1)/N * bytes / beta,
    with both coefficients kept non-negative. Needs two or more sizes.
    """
    _check_workers(n_workers)
    if n_workers < 2:
        raise ValueError("timings need at least 2 workers: one worker does not communicate")
    x, y = np.asarray(n_bytes, dtype=float), np.asarray(seconds, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(np.unique(x)) < 2:
        raise ValueError("n_bytes and seconds must be equal-length lists with 2+ different sizes")
    if np.any(x < 0) or np.any(y <= 0) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("sizes must be >= 0 and times > 0")
    steps = 2 * (n_workers - 1)
    slope, intercept = np.polyfit(x * steps / n_workers, y, 1)
    if slope <= 0:  # timings too noisy to see the bandwidth: all latency
        slope = 1e-18
    return max(float(intercept) / steps, 0.0), 1.0 / float(slope)


@dataclass(frozen=True)
class ScalingPoint:
    """One row of a data-parallel scaling table (all times in seconds per optimizer step)."""

    workers: int
    compute: float  # each worker's forward + backward + update
    communication: float  # the gradient all-reduce, what is not hidden behind compute
    step: float
    speedup: float  # over one worker doing the whole global batch
    efficiency: float  # speedup / workers: 1.0 is perfect scaling


def data_parallel_scaling(compute_seconds: float, gradient_bytes: float,
                          workers: Sequence[int], bandwidth: float, latency: float = 0.0,
                          fixed_global_batch: bool = True, overlap: float = 0.0
                          ) -> list[ScalingPoint]:
    """Step time, speedup and efficiency of data parallelism for each number of workers.

    compute_seconds: one worker's step on the *whole* global batch (N = 1).
    fixed_global_batch: True splits that batch over the workers (compute / N
    each); False gives every worker the full batch (the global batch grows
    with N, and speedup counts tokens per second). overlap: the share of the
    all-reduce hidden behind the backward pass (DDP overlaps buckets), 0 to 1.
    """
    _check_positive("compute_seconds", compute_seconds)
    _check_positive("gradient_bytes", gradient_bytes, allow_zero=True)
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be in [0, 1], got {overlap!r}")
    points = []
    for n in workers:
        _check_workers(n)
        compute = compute_seconds / n if fixed_global_batch else compute_seconds
        comm = all_reduce_seconds(gradient_bytes, n, bandwidth, latency)
        exposed = max(comm * (1 - overlap), comm - compute)  # at most compute can hide it
        step = compute + exposed
        work = 1.0 if fixed_global_batch else float(n)  # global batches per step, relative
        speedup = work * compute_seconds / step
        points.append(ScalingPoint(int(n), compute, exposed, step, speedup, speedup / n))
    return points


def workers_until_comm_dominates(compute_seconds: float, gradient_bytes: float,
                                 bandwidth: float, latency: float = 0.0,
                                 max_workers: int = 1 << 20) -> int | None:
    """The fewest workers (fixed global batch, no overlap) whose all-reduce takes at least as
    long as their share of the compute; None if that does not happen up to ``max_workers``.

    Communication minus compute grows with N, so a binary search finds the crossing.
    """
    def dominated(n: int) -> bool:
        p = data_parallel_scaling(compute_seconds, gradient_bytes, [n], bandwidth, latency)[0]
        return p.communication >= p.compute

    _check_workers(max_workers)
    if not dominated(max_workers):
        return None
    lo, hi = 1, max_workers  # dominated(hi) holds; find the smallest such n
    while lo < hi:
        mid = (lo + hi) // 2
        if dominated(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
