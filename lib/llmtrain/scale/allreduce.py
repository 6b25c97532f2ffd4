"""All-reduce by hand: the ring algorithm as a plan, as a simulation, and between processes.

* ``ring_schedule`` / ``simulate_ring_all_reduce`` / ``ring_all_reduce``: the ring
  all-reduce, as a plan, as a simulation on a list of tensors (any number of
  "workers" in one process), and with real messages between processes
  (``torch.distributed`` with gloo, so it runs on any CPU).
* ``naive_all_reduce``: everyone sends to rank 0, which sums and sends back.
* ``all_reduce_worker``: times both, in a worker process (chapter 13).
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist


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
