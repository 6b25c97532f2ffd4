"""Where the computation runs, in which precision, and from which random seed.

One place for the decisions every script would otherwise repeat:

* ``pick_device("auto")`` prefers CUDA, then Apple's MPS, then the CPU;
  a student can force any of them ("cpu", "cuda", "cuda:1", "mps").
* ``autocast(device)`` is the precision policy: bfloat16 on a CUDA GPU that
  supports it, float16 (with a ``GradScaler``, see ``needs_grad_scaler``) on
  older GPUs, and plain float32 on the CPU and MPS, where low precision buys
  little and costs accuracy.
* ``seed_everything(seed)`` seeds Python, NumPy and torch in one call.
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """Return the device to run on: "auto" means cuda > mps > cpu.

    An explicit choice that is not available raises a ``ValueError`` saying
    what is available, instead of failing later inside torch.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto' or 'cpu', got {device!r}")
    name = device.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise ValueError(
            f"unknown device {device!r}: use one of 'auto', 'cpu', 'cuda' (or 'cuda:N'), 'mps'"
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was asked for but no CUDA GPU is visible: use 'auto' or 'cpu'")
    if kind == "mps" and not _mps_available():
        raise ValueError("device='mps' was asked for but MPS is not available: use 'auto' or 'cpu'")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The low-precision dtype used for matmuls on ``device``, or None for fp32."""
    if device.type != "cuda":
        return None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def needs_grad_scaler(device: torch.device) -> bool:
    """float16 gradients underflow without loss scaling; bfloat16 ones do not."""
    return autocast_dtype(device) == torch.float16


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """The mixed-precision context for forward passes on ``device``."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator for ``seed``."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads for torch (default: all cores this process may use)."""
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS, Windows
            n = os.cpu_count() or 1
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


def describe(device: torch.device) -> str:
    """One line for a notebook: which device and which precision policy."""
    dtype = autocast_dtype(device)
    precision = "float32" if dtype is None else f"{str(dtype).replace('torch.', '')} autocast"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{device} ({name}), {precision}"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads), {precision}"
    return f"{device}, {precision}"
