"""Data-parallel training in real processes: all-reduce by hand, then PyTorch's DDP.

Everything here runs on ``torch.distributed`` with the gloo backend, so it works
on any CPU; on GPUs the same code would use NCCL.

* ``ring_schedule`` / ``simulate_ring_all_reduce`` / ``ring_all_reduce``: the ring
  all-reduce, as a plan, as a simulation on a list of tensors (any number of
  "workers" in one process), and with real messages between processes.
* ``naive_all_reduce``: everyone sends to rank 0, which sums and sends back.
* ``train_by_hand``: data-parallel training written out: each worker computes
  the gradient of its own batch, the gradients are all-reduced by hand and
  averaged, every copy takes the same optimizer step.
* ``MergedBatches`` and ``saved_activation_bytes``: gradient accumulation as data
  parallelism in time, and what it saves (memory for the backward pass).

The jobs run in worker processes started by ``llmtrain.workers.Workers``. The
functions given to workers (``*_worker``, ``train_by_hand``) live in this
module, not in a notebook, because each worker is a new process that must
import them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn as nn

from .train import Callback, TrainConfig, Trainer, language_model_loss


# --- the ring all-reduce -------------------------------------------------------
def ring_schedule(n_workers: int) -> list[tuple[str, list[tuple[int, int, int]]]]:
    """The ring all-reduce as a plan: 2 (N - 1) steps, each a list of (worker, chunk sent,
    chunk received). Worker r always sends to r + 1 and receives from r - 1 (mod N).

    Reduce-scatter step s: worker r sends chunk (r - s) mod N and adds the chunk
    (r - s - 1) mod N it receives. After N - 1 steps worker r holds the full sum
    of chunk (r + 1) mod N. All-gather step s: r sends chunk (r + 1 - s) mod N and
    overwrites chunk (r - s) mod N with what it receives.
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a whole number >= 1, got {n_workers!r}")
    n = n_workers
    plan = []
    for s in range(n - 1):
        plan.append(("reduce-scatter", [(r, (r - s) % n, (r - s - 1) % n) for r in range(n)]))
    for s in range(n - 1):
        plan.append(("all-gather", [(r, (r + 1 - s) % n, (r - s) % n) for r in range(n)]))
    return plan


def simulate_ring_all_reduce(tensors: list[torch.Tensor], trace: list | None = None
                             ) -> tuple[list[torch.Tensor], list[int]]:
    """Run the ring all-reduce on N same-shaped tensors, one per pretend worker.

    Returns (each worker's result: the sum of all tensors, bytes each worker sent).
    The messages of one step are all read before any is applied, as they would
    travel at the same time. With a list as ``trace``, a snapshot of every
    worker's chunks (N lists of N tensors) is appended after each step.
    """
    if not tensors or any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError("give one tensor per worker, all of the same shape")
    n = len(tensors)
    chunks = [list(t.detach().clone().flatten().tensor_split(n)) for t in tensors]
    sent = [0] * n
    for phase, moves in ring_schedule(n):
        incoming = {(r + 1) % n: chunks[r][send].clone() for r, send, _ in moves}
        for r, send, receive in moves:
            sent[r] += chunks[r][send].numel() * chunks[r][send].element_size()
            if phase == "reduce-scatter":
                chunks[r][receive] += incoming[r]
            else:
                chunks[r][receive] = incoming[r]
        if trace is not None:
            trace.append((phase, [[c.clone() for c in worker] for worker in chunks]))
    results = [torch.cat(c).view_as(t) for c, t in zip(chunks, tensors)]
    return results, sent


def ring_all_reduce(tensor: torch.Tensor) -> int:
    """Sum ``tensor`` over all ranks, in place, with the ring algorithm and point-to-point
    messages (``dist.isend`` / ``dist.recv``). Returns the bytes this rank sent."""
    rank, n = dist.get_rank(), dist.get_world_size()
    if n == 1:
        return 0
    flat = tensor.view(-1) if tensor.is_contiguous() else tensor.flatten()
    chunks = list(flat.tensor_split(n))
    right, left = (rank + 1) % n, (rank - 1) % n
    sent = 0
    for phase, moves in ring_schedule(n):
        _, send, receive = moves[rank]
        inbox = torch.empty_like(chunks[receive])
        request = dist.isend(chunks[send].contiguous(), right) if chunks[send].numel() else None
        if inbox.numel():  # chunks are empty only for tensors with fewer values than ranks
            dist.recv(inbox, left)
        if request is not None:
            request.wait()
        sent += chunks[send].numel() * chunks[send].element_size()
        if phase == "reduce-scatter":
            chunks[receive] += inbox
        else:
            chunks[receive].copy_(inbox)
    if flat.data_ptr() != tensor.data_ptr():
        tensor.copy_(flat.view_as(tensor))
    return sent


def naive_all_reduce(tensor: torch.Tensor) -> int:
    """Sum ``tensor`` over all ranks, in place: all send to rank 0, which adds and sends the
    sum back to each. Returns the bytes this rank sent (rank 0 sends N - 1 copies)."""
    rank, n = dist.get_rank(), dist.get_world_size()
    size = tensor.numel() * tensor.element_size()
    if rank == 0:
        inbox = torch.empty_like(tensor)
        for other in range(1, n):
            dist.recv(inbox, other)
            tensor += inbox
        for other in range(1, n):
            dist.send(tensor, other)
        return size * (n - 1)
    dist.send(tensor, 0)
    dist.recv(tensor, 0)
    return size


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
    from .model import GPT

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
    from .losses import next_token_loss

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


# --- jobs for chapter 13's workers (importable, so a new process can run them) ----
def all_reduce_worker(rank: int, world_size: int, sizes: list[int], repeats: int = 5) -> dict:
    """Check ring and naive all-reduce against ``dist.all_reduce`` and time all three.

    sizes: numbers of float32 values. Returns per size the fastest of ``repeats``
    timings of each method (a busy machine only ever adds time), whether the
    results agreed with torch's, and the bytes this rank sent.
    """
    g = torch.Generator().manual_seed(rank)
    methods = (("torch", dist.all_reduce), ("ring", ring_all_reduce), ("naive", naive_all_reduce))
    for _, method in methods:  # the first messages between two ranks also open their connection
        method(torch.zeros(2 * world_size))
    rows = []
    for n in sizes:
        data = torch.randn(n, generator=g)
        row = {"values": n}
        reference = data.clone()
        dist.all_reduce(reference)
        for name, method in methods:
            times = []
            for _ in range(repeats):
                buf = data.clone()
                dist.barrier()
                start = time.perf_counter()
                sent = method(buf)
                times.append(time.perf_counter() - start)
            row[name] = min(times)
            if name != "torch":
                row[f"{name}_ok"] = bool(torch.allclose(buf, reference, rtol=1e-5, atol=1e-5))
                row[f"{name}_bytes"] = sent
        rows.append(row)
    return {"rank": rank, "rows": rows}


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
