"""Pictures and playgrounds of chapter 13 (distributed training).

* ``ring_plot``: who holds what after each step of a ring all-reduce;
* ``efficiency_plot``: data-parallel efficiency against the number of workers;
* ``estimator_playground``: what a training run costs (6ND, GPU peak, MFU,
  GPUs, days, dollars, memory), as sliders;
* ``scaling_playground``: when communication eats the gain of more workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..core.device import GPU_SPECS, gpu_by_name
from ..scale import comm_cost, run_cost
from ..scale.allreduce import simulate_ring_all_reduce
from .plots import new_axes
from .widgets import Playground, slider

WORKER_NAMES = "ABCDEFGH"


def ring_plot(n_workers: int = 4):
    """One panel per step of the ring all-reduce: worker x chunk, shaded by how many
    workers' gradients that chunk already sums, labelled with their names."""
    if not 2 <= n_workers <= len(WORKER_NAMES):
        raise ValueError(f"n_workers must be from 2 to {len(WORKER_NAMES)}, got {n_workers}")
    # worker r starts with 2^r everywhere: a chunk's value is then the set of its contributors
    tensors = [torch.full((n_workers,), float(2 ** r), dtype=torch.float64)
               for r in range(n_workers)]
    trace = [("start", [list(t.tensor_split(n_workers)) for t in tensors])]
    simulate_ring_all_reduce(tensors, trace)
    fig, axes = plt.subplots(1, len(trace), figsize=(1.9 * len(trace), 2.8), squeeze=False)
    counts = {}
    for i, (ax, (phase, chunks)) in enumerate(zip(axes[0], trace)):
        masks = [[int(c.item()) for c in worker] for worker in chunks]
        grid = np.array([[bin(m).count("1") for m in row] for row in masks])
        counts[phase] = counts.get(phase, 0) + (phase != "start")
        ax.imshow(grid, vmin=0, vmax=n_workers, cmap="Blues")
        for r, row in enumerate(masks):
            for c, m in enumerate(row):
                names = "".join(WORKER_NAMES[k] for k in range(n_workers) if m >> k & 1)
                ax.text(c, r, names, ha="center", va="center", fontsize=7,
                        color="white" if bin(m).count("1") > n_workers / 2 else "black")
        label = phase if phase == "start" else f"{phase} {counts[phase]}"
        ax.set_title(label, fontsize=8)
        ax.set_xticks(range(n_workers), [str(c) for c in range(n_workers)], fontsize=7)
        ax.set_yticks(range(n_workers), list(WORKER_NAMES[:n_workers]) if i == 0 else [""] *
                      n_workers, fontsize=7)
        ax.set_xlabel("chunk", fontsize=7)
    axes[0][0].set_ylabel("worker")
    fig.suptitle(f"Ring all-reduce with {n_workers} workers: whose gradients each chunk holds",
                 fontsize=10)
    fig.tight_layout()
    return fig


def efficiency_plot(curves: dict[str, Sequence[comm_cost.ScalingPoint]], ax=None,
                    title: str = "Data-parallel efficiency"):
    """Efficiency (speedup / workers) against workers, one line per curve."""
    ax = new_axes(title, "workers (log scale)", "efficiency (1 = perfect)", ax)
    for label, points in curves.items():
        ax.plot([p.workers for p in points], [p.efficiency for p in points], "o-", ms=3,
                label=label)
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    return ax


def _gpu_names() -> list[str]:
    return [spec.name for _, spec in GPU_SPECS]


def estimator_playground(n_params: float = 405e9, n_tokens: float = 15.6e12,
                         gpu: str = "NVIDIA H100 SXM", n_gpus: int = 16_384, mfu: float = 0.4,
                         dollars_per_gpu_hour: float = 2.0) -> Playground:
    """Sliders for a training run's size and hardware; shows days against GPUs, and the bill."""

    def run(n_params, n_tokens, gpu, log2_gpus, mfu, price):
        count = int(round(2 ** log2_gpus))
        est = run_cost.estimate_run(n_params, n_tokens, gpu, count, mfu, price)
        fig, ax = plt.subplots(figsize=(6, 3.4))
        counts = np.unique(np.geomspace(1, 2 ** 20, 60).round().astype(int))
        days = [run_cost.estimate_run(n_params, n_tokens, gpu, int(c), mfu, price).wall_days
                for c in counts]
        new_axes("Time to train against cluster size", "GPUs (log scale)",
                 "wall-clock days (log scale)", ax)
        ax.loglog(counts, days, color="C0", label=f"{gpu}, {mfu:.0%} MFU")
        ax.loglog([count], [est.wall_days], "o", color="C3", label=f"{count:,} GPUs")
        for d, text in ((30, "a month"), (365, "a year")):
            ax.axhline(d, color="gray", ls=":", lw=1)
            ax.text(1.5, d * 1.15, text, fontsize=7, color="gray")
        if est.gpus_to_hold_state > 1:
            ax.axvline(est.gpus_to_hold_state, color="C1", ls="--", lw=1,
                       label="fewest GPUs that hold the training state")
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        return fig, est.summary()

    controls = {
        "n_params": slider(n_params, 7, 13, 0.1, "parameters", log=True, readout_format=".2e"),
        "n_tokens": slider(n_tokens, 9, 14, 0.1, "tokens", log=True, readout_format=".2e"),
        "gpu": W.Dropdown(options=_gpu_names(), value=gpu, description="GPU"),
        "log2_gpus": slider(float(np.log2(n_gpus)), 0.0, 20.0, 0.5, "log2 GPUs"),
        "mfu": slider(mfu, 0.05, 0.8, 0.01, "MFU"),
        "price": slider(dollars_per_gpu_hour, 0.5, 10.0, 0.25, "$ per GPU-hour"),
    }
    return Playground(run, controls, title="What does a training run cost?")


def scaling_playground(n_params: float = 1.5e9, tokens_per_step: float = 1e6,
                       gpu: str = "NVIDIA H100 SXM", mfu: float = 0.4,
                       interconnect: str = "InfiniBand NDR (400 Gb/s)", overlap: float = 0.5,
                       bytes_per_value: int = 4) -> Playground:
    """Sliders for model size, global batch, GPU, link and overlap; shows the efficiency of
    data parallelism from 1 to 4,096 workers with a fixed global batch."""
    workers = [2 ** k for k in range(13)]

    def run(n_params, tokens_per_step, gpu, interconnect, overlap, bytes_per_value):
        spec = gpu_by_name(gpu)
        compute = 6 * n_params * tokens_per_step / (spec.peak_flops * mfu)  # one GPU, whole batch
        bandwidth, latency = comm_cost.INTERCONNECTS[interconnect]
        grad_bytes = n_params * bytes_per_value
        curves = {f"{interconnect}, {overlap:.0%} overlap": comm_cost.data_parallel_scaling(
            compute, grad_bytes, workers, bandwidth, latency, overlap=overlap)}
        if interconnect != "NVLink 4 (H100, per direction)":
            bw, lat = comm_cost.INTERCONNECTS["NVLink 4 (H100, per direction)"]
            curves["NVLink 4 for comparison"] = comm_cost.data_parallel_scaling(
                compute, grad_bytes, workers, bw, lat, overlap=overlap)
        fig, ax = plt.subplots(figsize=(6, 3.4))
        efficiency_plot(curves, ax, "Efficiency with a fixed global batch")
        fig.tight_layout()
        first = curves[next(iter(curves))]
        half = next((p.workers for p in first if p.efficiency < 0.5), None)
        text = (f"one GPU: {compute:.2f} s of compute per step of {tokens_per_step:,.0f} tokens; "
                f"gradient {grad_bytes / 1e9:.2f} GB, ring all-reduce "
                f"{comm_cost.all_reduce_seconds(grad_bytes, 64, bandwidth, latency):.3f} s "
                f"with 64 workers\n" + (f"efficiency falls below 50% at {half:,} workers"
                                        if half else "efficiency stays above 50% up to 4,096"))
        return fig, text

    controls = {
        "n_params": slider(n_params, 7, 12, 0.1, "parameters", log=True, readout_format=".2e"),
        "tokens_per_step": slider(tokens_per_step, 4, 8, 0.1, "tokens per step", log=True,
                                  readout_format=".2e"),
        "gpu": W.Dropdown(options=_gpu_names(), value=gpu, description="GPU"),
        "interconnect": W.Dropdown(options=list(comm_cost.INTERCONNECTS), value=interconnect,
                                   description="link"),
        "overlap": slider(overlap, 0.0, 0.95, 0.05, "overlap"),
        "bytes_per_value": W.Dropdown(options=[("fp32 gradients", 4), ("bf16 gradients", 2)],
                                      value=bytes_per_value, description="gradients"),
    }
    return Playground(run, controls, title="When does communication win?")
