"""Where the computation runs, in which precision, and from which random seed.

One place for the decisions every script would otherwise repeat:

* ``pick_device("auto")`` prefers CUDA, then Apple's MPS, then the CPU;
  a student can force any of them ("cpu", "cuda", "cuda:1", "mps").
* ``policy(device)`` says how to train fast and safely there (``DevicePolicy``):
  on a CUDA GPU bfloat16 autocast (float16 with a ``GradScaler`` on GPUs
  without bf16), TF32 matmuls for what stays in float32, PyTorch's fused
  AdamW, ``torch.compile``, pinned memory and non-blocking copies; on the CPU
  and on MPS plain float32 and the paths known to be safe (no compile, the
  default AdamW, blocking copies), so results are exact there.
* ``autocast(device)`` is the precision context for forward passes.
* ``for_device`` lets a chapter pick bigger presets and more data on a GPU,
  and say so.
* ``init_distributed`` / ``cleanup_distributed`` join and leave the process
  group started by ``torchrun`` (NCCL on GPUs, gloo on the CPU).
* ``seed_everything(seed)`` seeds Python, NumPy and torch in one call.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import weakref
from dataclasses import dataclass

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


# --- the training policy per device -------------------------------------------
@dataclass(frozen=True)
class DevicePolicy:
    """How the Trainer uses a device. Build it with ``policy(device)``."""

    device_type: str  # "cuda", "cpu" or "mps"
    autocast_dtype: torch.dtype | None  # matmuls in bf16/fp16 under autocast; None: fp32
    grad_scaler: bool  # float16 gradients need loss scaling; bfloat16 ones do not
    tf32: bool  # let float32 matmuls use TF32 tensor cores (10-bit mantissa inputs)
    fused_adamw: bool  # one fused kernel for the whole AdamW update
    compile: bool  # torch.compile the model
    pin_memory: bool  # copy batches through page-locked memory, without blocking

    @property
    def non_blocking(self) -> bool:
        return self.pin_memory


def policy_for(device_type: str, bf16_supported: bool = True,
               compile: bool | None = None) -> DevicePolicy:
    """The policy for a kind of device, without touching any hardware (testable anywhere).

    ``compile``: None means the default for the device (on for CUDA, off for
    the CPU and MPS, where it gains little and needs a C++ toolchain).
    """
    if device_type not in ("cuda", "cpu", "mps"):
        raise ValueError(f"device_type must be 'cuda', 'cpu' or 'mps', got {device_type!r}")
    if compile is not None and not isinstance(compile, bool):
        raise ValueError(f"compile must be True, False or None (automatic), got {compile!r}")
    cuda = device_type == "cuda"
    dtype = (torch.bfloat16 if bf16_supported else torch.float16) if cuda else None
    return DevicePolicy(device_type=device_type, autocast_dtype=dtype,
                        grad_scaler=dtype == torch.float16, tf32=cuda, fused_adamw=cuda,
                        compile=cuda if compile is None else compile, pin_memory=cuda)


def policy(device: torch.device, compile: bool | None = None) -> DevicePolicy:
    """The policy for ``device`` on this machine (asks CUDA whether it has bfloat16)."""
    device = torch.device(device)
    # emulated bf16 (pre-Ampere GPUs) is slow: those get float16 and a GradScaler
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if compile is None and device.type == "cuda" and not _triton_available():
        compile = False  # torch.compile's GPU code generator is Triton (missing on Windows)
    return policy_for(device.type, bf16_supported=bf16, compile=compile)


def _triton_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("triton") is not None


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The low-precision dtype used for matmuls on ``device``, or None for fp32."""
    return policy(device).autocast_dtype


def needs_grad_scaler(device: torch.device) -> bool:
    """float16 gradients underflow without loss scaling; bfloat16 ones do not."""
    return autocast_dtype(device) == torch.float16


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """The mixed-precision context for forward passes on ``device``."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def enable_tf32(device: torch.device) -> bool:
    """On CUDA, let float32 matmuls and convolutions use TF32; elsewhere change nothing.

    Returns whether TF32 is on. Uses PyTorch's ``fp32_precision`` settings
    (mixing them with the older ``allow_tf32`` flags is an error in torch >= 2.9).
    """
    if torch.device(device).type != "cuda":
        return False
    matmul = torch.backends.cuda.matmul
    try:
        matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
    except (AttributeError, RuntimeError):  # torch before 2.9
        torch.set_float32_matmul_precision("high")
    return True


def to_device(batch, device: torch.device):
    """Move a batch (tensor, or tuple/list/dict of them) to ``device``.

    To a CUDA GPU tensors travel through pinned (page-locked) memory with
    ``non_blocking=True``, so the copy overlaps with the GPU's work. On the
    CPU this is a no-op that returns the same tensors; MPS gets plain copies.
    """
    if isinstance(batch, torch.Tensor):
        if device.type == "cuda" and batch.device.type == "cpu":
            if not batch.is_pinned():
                batch = batch.pin_memory()
            return batch.to(device, non_blocking=True)
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


# --- bigger experiments on bigger machines ------------------------------------
def for_device(device: torch.device, cpu: dict, cuda: dict, mps: dict | None = None
               ) -> tuple[dict, str]:
    """A chapter's sizes for ``device``: ``cuda`` on a CUDA GPU, ``mps`` (default: the CPU's
    sizes) on Apple GPUs, ``cpu`` elsewhere; and one sentence saying which were picked.

    Chapters call it with ``device="auto"`` so that a student with a GPU gets a
    bigger model and more data without editing anything.
    """
    if not isinstance(cpu, dict) or not isinstance(cuda, dict):
        raise TypeError("cpu and cuda must be dicts of sizes, e.g. dict(preset='tiny')")
    kind = torch.device(device).type
    chosen = {"cuda": cuda, "mps": mps or cpu}.get(kind, cpu)
    shown = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
    if kind == "cuda":
        others = ", ".join(f"{k}={v!r}" for k, v in cpu.items())
        return dict(chosen), (f"A CUDA GPU is here, so the GPU sizes are used: {shown} "
                              f"(on a CPU: {others}).")
    where = "Apple GPU (MPS)" if kind == "mps" else "CPU"
    return dict(chosen), f"Running on the {where}: {shown} (a CUDA GPU would use bigger sizes)."


@dataclass(frozen=True)
class GPUSpec:
    """What a GPU can do, from its vendor's datasheet."""

    name: str
    peak_flops: float  # dense 16-bit tensor-core FLOP/s (bf16; fp16 on GPUs without bf16)
    memory_gb: float  # on-board memory, GB


# Vendor datasheet figures, dense (no sparsity). The patterns match the names that
# torch.cuda.get_device_name() reports; the more specific ones come first.
GPU_SPECS: tuple[tuple[str, GPUSpec], ...] = (
    (r"B200", GPUSpec("NVIDIA B200", 2250e12, 180)),
    (r"GH200", GPUSpec("NVIDIA GH200", 989e12, 96)),
    (r"H200.*NVL", GPUSpec("NVIDIA H200 NVL", 835e12, 141)),
    (r"H200", GPUSpec("NVIDIA H200 SXM", 989e12, 141)),
    (r"H100.*NVL", GPUSpec("NVIDIA H100 NVL", 835e12, 94)),
    (r"H100.*PCIe", GPUSpec("NVIDIA H100 PCIe", 756e12, 80)),
    (r"H100", GPUSpec("NVIDIA H100 SXM", 989e12, 80)),
    (r"A100", GPUSpec("NVIDIA A100", 312e12, 80)),
    (r"L40S", GPUSpec("NVIDIA L40S", 362e12, 48)),
    (r"\bL4\b", GPUSpec("NVIDIA L4", 121e12, 24)),
    (r"\bA10\b", GPUSpec("NVIDIA A10", 125e12, 24)),
    (r"RTX 4090", GPUSpec("GeForce RTX 4090", 165e12, 24)),
    (r"RTX 3090", GPUSpec("GeForce RTX 3090", 71e12, 24)),
    (r"V100", GPUSpec("Tesla V100 (fp16)", 125e12, 32)),
    (r"\bT4\b", GPUSpec("Tesla T4 (fp16)", 65e12, 16)),
)


def gpu_spec(device_name: str) -> GPUSpec | None:
    """The datasheet figures for a CUDA device name (e.g. "NVIDIA H100 80GB HBM3"), or None
    for a GPU not in ``GPU_SPECS`` (then pass its peak to the benchmark yourself)."""
    if not isinstance(device_name, str):
        raise TypeError(f"device_name must be a string, got {device_name!r}")
    for pattern, spec in GPU_SPECS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return spec
    return None


def gpu_by_name(name: str) -> GPUSpec:
    """A ``GPU_SPECS`` entry by its exact name, e.g. "NVIDIA H100 SXM"."""
    specs = {spec.name: spec for _, spec in GPU_SPECS}
    if name not in specs:
        raise ValueError(f"unknown GPU {name!r}: choose one of {list(specs)}")
    return specs[name]


# --- data-parallel processes ---------------------------------------------------
def distributed_env() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from the variables torchrun sets; (0, 0, 1) without."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ValueError("RANK, LOCAL_RANK and WORLD_SIZE must be whole numbers "
                         "(they are set by torchrun; unset them to train in one process)") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} must be in [0, WORLD_SIZE={world}): check the launcher")
    return rank, local, world


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group started by torchrun, if any: (rank, world_size, device).

    NCCL on CUDA (each process on the GPU of its LOCAL_RANK), gloo on the CPU.
    An already initialised group (e.g. started by a launcher) is reused.
    """
    import torch.distributed as dist

    rank, local, world = distributed_env()
    device = torch.device(device)
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return 0, 1, device

    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} GPUs are "
                             "visible: start at most one process per GPU")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


# Objects that hold the process group (a Trainer's DDP wrapper), each with a
# ``release()`` that lets go of it; ``cleanup_distributed`` calls them.
_group_users: weakref.WeakSet = weakref.WeakSet()


def register_group_user(user) -> None:
    """Let ``cleanup_distributed`` call ``user.release()`` before it ends the group.

    A DDP wrapper keeps the process group (and its last buckets) alive. If the
    wrapper outlives ``destroy_process_group``, gloo's threads are torn down
    only while the interpreter itself is shutting down, and the process can
    then abort ("terminate called without an active exception") after the
    work is done. Releasing the wrapper first ends the group while Python is
    still fully alive.
    """
    _group_users.add(user)


def cleanup_distributed() -> None:
    """Leave the process group cleanly: wait for every rank, then tear it down.

    Call it once at the end of a data-parallel script. Without the barrier a
    fast rank can exit while the others still talk to it (gloo then aborts).
    Every registered user of the group (each Trainer's DDP wrapper) is released
    first, so the group really ends here and not at interpreter exit. A no-op
    when no group is running.
    """
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        for user in list(_group_users):
            user.release()
        _group_users.clear()
        gc.collect()  # DDP's hooks form reference cycles: free the wrappers now
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0 (the process that logs and writes checkpoints) or without torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return distributed_env()[0] == 0


# --- seeds, threads, one line for a notebook ----------------------------------
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
        compiled = " and torch.compile" if policy(device).compile else ""
        return f"{device} ({name}), {precision}; training adds TF32 matmuls, fused AdamW{compiled}"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads), {precision}"
    return f"{device}, {precision}"
