"""What it takes to train a real model: compute, GPUs, days, dollars and memory.

The estimate chains four facts:

* compute: training costs about 6 N D FLOPs (N parameters, D tokens; see
  ``scaling.training_flops``);
* speed: a GPU does at most its peak FLOP/s (``device.GPU_SPECS``, dense 16-bit
  tensor-core rates from the datasheets), and a real run gets a fraction of it,
  the model FLOPs utilisation (MFU): Llama 3 405B reported 38-43% on H100s;
* time and money: GPU-seconds = FLOPs / (peak x MFU); wall-clock time divides
  them by the number of GPUs, and the bill multiplies GPU-hours by a price;
* this machine: ``measure_step_seconds`` times real training steps here, the
  number to set against a datasheet;
* memory: mixed-precision AdamW keeps about 16 bytes per parameter (bf16
  weights and gradients, 2 + 2; a float32 master copy and Adam's two moments,
  4 + 4 + 4; Rajbhandari et al. 2020, ZeRO), before any activations. Plain data
  parallelism keeps all of it on every GPU, so a model whose 16 N bytes exceed
  one GPU's memory needs its state sharded (ZeRO / FSDP) or the model split
  (tensor and pipeline parallelism).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..core.device import GPUSpec, gpu_by_name
from ..core.train import Callback, TrainConfig, Trainer
from ..pretrain import scaling

BYTES_PER_PARAMETER_ADAMW = 16  # bf16 weights + bf16 grads + fp32 master + Adam m, v


@dataclass(frozen=True)
class RunEstimate:
    """The cost of one training run under stated assumptions."""

    n_params: float
    n_tokens: float
    gpu: GPUSpec
    n_gpus: int
    mfu: float  # model FLOPs utilisation, 0..1
    dollars_per_gpu_hour: float
    flops: float  # 6 N D
    gpu_hours: float
    wall_days: float
    dollars: float
    state_bytes: float  # weights, gradients and optimizer state (16 bytes per parameter)

    @property
    def tokens_per_second(self) -> float:
        """Tokens the whole cluster trains on per second."""
        return self.n_tokens / (self.wall_days * 86_400)

    @property
    def gpus_to_hold_state(self) -> int:
        """The fewest GPUs whose memory holds the training state, if it is sharded evenly."""
        return math.ceil(self.state_bytes / (self.gpu.memory_gb * 1e9))

    def summary(self) -> str:
        """A few lines for a notebook."""
        fits = ("fits on one GPU" if self.gpus_to_hold_state <= 1 else
                f"needs at least {self.gpus_to_hold_state:,} GPUs' memory, so it must be "
                "sharded across GPUs (ZeRO/FSDP, tensor or pipeline parallelism)")
        return (f"{_si(self.n_params)} parameters x {_si(self.n_tokens)} tokens = "
                f"{self.flops:.2e} FLOPs (6ND)\n"
                f"{self.n_gpus:,} x {self.gpu.name} at {self.mfu:.0%} MFU "
                f"({self.gpu.peak_flops / 1e12:,.0f} TFLOP/s peak each): "
                f"{self.gpu_hours:,.0f} GPU-hours, {self.wall_days:,.1f} days, "
                f"about ${self.dollars:,.0f} at ${self.dollars_per_gpu_hour:g}/GPU-hour\n"
                f"training state {self.state_bytes / 1e9:,.0f} GB ({BYTES_PER_PARAMETER_ADAMW} "
                f"bytes/parameter): {fits}")


def _si(x: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}"


def training_state_bytes(n_params: float) -> float:
    """Bytes of weights, gradients and AdamW state in mixed precision: 16 per parameter."""
    if not n_params >= 0:
        raise ValueError(f"n_params must be >= 0, got {n_params!r}")
    return BYTES_PER_PARAMETER_ADAMW * float(n_params)


def estimate_run(n_params: float, n_tokens: float, gpu: str | GPUSpec = "NVIDIA H100 SXM",
                 n_gpus: int = 16_384, mfu: float = 0.4,
                 dollars_per_gpu_hour: float = scaling.DEFAULT_DOLLARS_PER_GPU_HOUR
                 ) -> RunEstimate:
    """FLOPs, GPU-hours, days, dollars and memory of training ``n_params`` on ``n_tokens``.

    gpu: a name from ``device.GPU_SPECS`` or a ``GPUSpec``; mfu in (0, 1].
    Restarts, evaluation and failed experiments come on top (a real project
    spends several times the final run).
    """
    spec = gpu if isinstance(gpu, GPUSpec) else gpu_by_name(gpu)
    for name, value in (("n_params", n_params), ("n_tokens", n_tokens)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, int) or n_gpus < 1:
        raise ValueError(f"n_gpus must be a whole number >= 1, got {n_gpus!r}")
    if not (isinstance(mfu, (int, float)) and 0 < mfu <= 1):
        raise ValueError(f"mfu must be in (0, 1] (0.4 is typical of large runs), got {mfu!r}")
    if not (isinstance(dollars_per_gpu_hour, (int, float)) and dollars_per_gpu_hour >= 0):
        raise ValueError(f"dollars_per_gpu_hour must be >= 0, got {dollars_per_gpu_hour!r}")
    flops = scaling.training_flops(n_params, n_tokens)
    cost = scaling.training_cost(flops, n_gpus, spec.peak_flops, mfu, dollars_per_gpu_hour)
    return RunEstimate(n_params=float(n_params), n_tokens=float(n_tokens), gpu=spec,
                       n_gpus=n_gpus, mfu=float(mfu), dollars_per_gpu_hour=dollars_per_gpu_hour,
                       flops=flops, gpu_hours=cost["gpu_days"] * 24, wall_days=cost["wall_days"],
                       dollars=cost["dollars"], state_bytes=training_state_bytes(n_params))


def measure_step_seconds(model: torch.nn.Module, batches, device: torch.device | str = "cpu",
                         steps: int = 5, warmup: int = 2, **config) -> float:
    """Median seconds of one full training step (forward, backward, AdamW) of ``model`` on
    ``batches`` with the course Trainer on ``device``, after ``warmup`` untimed steps
    (the first steps pay for memory allocation and, on a GPU, compilation)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a whole number >= 0, got {warmup!r}")
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: list[float] = []

    class Clock(Callback):
        def on_train_start(self, trainer):
            self.last = time.perf_counter()

        def on_step(self, trainer, step, loss):
            sync()
            now = time.perf_counter()
            if step > warmup:
                times.append(now - self.last)
            self.last = now

    cfg = TrainConfig(**{"max_steps": warmup + steps, "device": str(device), "progress": False,
                         **config})
    Trainer(model, batches, cfg, callbacks=[Clock()]).fit()
    times.sort()
    return 0.5 * (times[(len(times) - 1) // 2] + times[len(times) // 2])
