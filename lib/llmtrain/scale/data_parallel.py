"""Data-parallel training in real processes: by hand (all-reduced gradients), then with DDP.

Everything here runs on ``torch.distributed`` with the gloo backend, so it works
on any CPU; on GPUs the same code would use NCCL.

* ``train_by_hand``: data-parallel training written out: each worker computes
  the gradient of its own batch, the gradients are all-reduced by hand and
  averaged, every copy takes the same optimizer step.
* ``MergedBatches`` and ``saved_activation_bytes``: gradient accumulation as data
  parallelism in time, and what it saves (memory for the backward pass).

The jobs run in worker processes started by ``scale.workers.Workers``. The
functions given to workers (``trainer_worker``, ``train_by_hand``) live in this
module, not in a notebook, because each worker is a new process that must
import them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn as nn

from ..core.losses import next_token_loss
from ..core.model import GPT
from ..core.train import Callback, TrainConfig, Trainer, language_model_loss
from .allreduce import ring_all_reduce


# --- data parallelism by hand --------------------------------------------------
def flat_gradients(model: nn.Module) -> torch.Tensor:
    """All gradients in one flat buffer (DDP packs them into 'buckets' like this)."""
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def set_flat_gradients(model: nn.Module, flat: torch.Tensor) -> None:
    """Write a flat buffer back into the ``.grad`` of each parameter, in order."""
    offset = 0
    for p in model.parameters():
        if p.grad is not None:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


def copies_max_difference(model: nn.Module) -> float:
    """Largest |weight on this rank - weight on rank 0| over all weights and ranks."""
    mine = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    first = mine.clone()
    dist.broadcast(first, 0)
    gap = (mine - first).abs().max().reshape(1)
    dist.all_reduce(gap, op=dist.ReduceOp.MAX)
    return float(gap)


def make_gpt(config, seed: int = 0) -> nn.Module:
    """A freshly initialised GPT of ``config``, the same on every worker for the same seed."""
    torch.manual_seed(seed)
    return GPT(config)


def train_by_hand(rank: int, world_size: int, model_config, batches, steps: int,
                  lr: float = 1e-3, sync: bool = True, seed: int = 0) -> dict:
    """Data-parallel AdamW written out (a job for ``Workers.run``).

    Each worker builds the same GPT (``make_gpt(model_config, seed)``), reads its own
    batches (indices rank, rank + N, ...), computes its gradient, all-reduces
    it with ``ring_all_reduce`` and divides by N; then every copy takes the
    same step. With ``sync=False`` the all-reduce is skipped and each copy
    trains on its own data. Returns per step the loss of this worker and the
    largest weight difference between copies, and the final weights.
    """
    model = make_gpt(model_config, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses, gaps, sent = [], [], 0
    for step in range(steps):
        x, y = batches(step * world_size + rank)
        loss = next_token_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if sync:
            grads = flat_gradients(model)
            sent += ring_all_reduce(grads)
            set_flat_gradients(model, grads / world_size)
        opt.step()
        losses.append(float(loss))
        gaps.append(copies_max_difference(model))
    return {"losses": losses, "gaps": gaps, "bytes_sent": sent,
            "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}


# --- gradient accumulation: data parallelism in time ---------------------------
class MergedBatches:
    """Batch i is micro-batches k*i .. k*i + k - 1 of ``batches``, concatenated: one big
    batch made of exactly the windows that k workers (or k accumulation steps) read."""
    def __init__(self, batches: Callable, k: int):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a whole number >= 1, got {k!r}")
        self.batches, self.k = batches, k

    def __call__(self, i: int):
        parts = [self.batches(self.k * i + j) for j in range(self.k)]
        return tuple(torch.cat(ts) for ts in zip(*parts))


def saved_activation_bytes(model: nn.Module, batch, loss_fn=None) -> int:
    """Bytes of the tensors autograd keeps from one forward pass for the backward pass.

    This is the memory that grows with the micro-batch: gradient accumulation
    keeps it small by running the batch in pieces. Each stored tensor is counted
    once (views of the same storage too).
    """
    loss_fn = loss_fn or language_model_loss
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model, batch)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    del loss
    return sum(n for ptr, n in seen.items() if ptr not in params)


def trainer_worker(rank: int, world_size: int, model_config, batches, config_kwargs: dict,
                   crash_at: int | None = None, seed: int = 0) -> dict:
    """Train ``make_gpt(model_config, seed)`` with the course's ``Trainer`` on the CPU under
    DDP (``Workers`` has started the group; the Trainer joins it as under torchrun).

    With ``crash_at`` the run raises at that step (after its checkpoints), and
    a fresh Trainer with a freshly built model resumes from the checkpoint, as
    a restarted job would. Returns the final weights, the loss log, the
    largest weight difference between the copies and the seconds per step.
    """
    class Crash(Callback):
        def on_step(self, trainer, step, loss):
            if step == crash_at:
                raise _Crash(f"worker {rank} crashed at step {step}")

    config_kwargs = {**config_kwargs, "device": "cpu", "progress": False}
    trainer = Trainer(make_gpt(model_config, seed), batches, TrainConfig(**config_kwargs),
                      callbacks=[Crash()] if crash_at else [])
    crashed = None
    try:
        trainer.fit()
    except _Crash as e:
        crashed = str(e)
        dist.barrier()  # both ranks crashed at the same step; wait for the file to settle
        trainer = Trainer(make_gpt(model_config, seed + 1), batches,  # other random weights
                          TrainConfig(**config_kwargs))
        trainer.fit(resume=True)
    return {"state": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
            "loss": trainer.history.loss, "steps": trainer.history.steps,
            "gap": copies_max_difference(trainer.model), "crashed": crashed,
            "seconds_per_step": trainer.history.seconds / max(1, trainer.step)}


class _Crash(RuntimeError):
    pass
