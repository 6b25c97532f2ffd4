"""Worker processes started from a notebook or a script, in one torch.distributed group.

``Workers(world_size)`` starts fresh Python processes (as ``torchrun`` would),
joins them in one gloo process group and keeps them up between jobs;
``workers.run(fn, *args)`` runs ``fn(rank, world_size, *args)`` on every worker
and returns the results by rank. ``launch(fn, world_size, *args)`` does the
same for a single job. Workers run on the CPU with one thread each, meet
through a file (no network port needed), and shut down cleanly: on request,
when a job fails or runs out of time, and when the process that started them
is gone. Chapter 13's jobs live in ``llmtrain.scale.data_parallel``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist

from ..core.device import cleanup_distributed
from ..core.train import atomic_torch_save

MAX_WORKERS = 8


class WorkerFailed(RuntimeError):
    """A worker raised an exception, died, or did not finish in time."""


class Workers:
    """``world_size`` worker processes in one gloo process group, kept up between jobs.

    ``workers.run(fn, *args)`` runs ``fn(rank, world_size, *args)`` on every
    worker and returns the results by rank. Starting Python and torch in a new
    process takes seconds, so a chapter starts its workers once and gives them
    several jobs. Each worker is a fresh ``python`` process on the CPU (as
    ``torchrun`` would start), with ``threads`` threads; the workers meet
    through a file, so no network port is needed. ``fn`` and ``args`` must be
    picklable (module-level functions, data, configs); results travel back
    through ``torch.save``. A failed or overdue job stops every worker and
    raises ``WorkerFailed`` with the worker's error. Use it as a context
    manager, or call ``close()``.
    """
    def __init__(self, world_size: int = 2, timeout: float = 120.0, threads: int = 1):
        if isinstance(world_size, bool) or not isinstance(world_size, int) or not (
                1 <= world_size <= MAX_WORKERS):
            raise ValueError(f"world_size must be a whole number from 1 to {MAX_WORKERS}, "
                             f"got {world_size!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.world_size, self.timeout = world_size, float(timeout)
        self._dir = tempfile.TemporaryDirectory()
        self._jobs = 0
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
        code = "from llmtrain.scale.workers import worker_main; worker_main()"
        self._procs = []
        for rank in range(world_size):
            with open(self._path(f"log{rank}.txt"), "w") as log:
                self._procs.append(subprocess.Popen(
                    [sys.executable, "-c", code, self._dir.name, str(rank), str(world_size),
                     str(threads), str(timeout), str(os.getpid())],
                    stdout=log, stderr=subprocess.STDOUT, env=env))

    def _path(self, name: str) -> str:
        return os.path.join(self._dir.name, name)

    def run(self, fn: Callable, *args, timeout: float | None = None) -> list:
        """Run ``fn(rank, world_size, *args)`` on every worker; the results, by rank."""
        if not self._procs:
            raise WorkerFailed("these workers are closed: start new ones with Workers(...)")
        if getattr(fn, "__module__", "__main__") in ("__main__", "__mp_main__"):
            raise ValueError(f"{getattr(fn, '__name__', fn)} is defined in the notebook or "
                             "script, so a worker process cannot import it: put it in a module")
        job = self._jobs
        try:
            atomic_torch_save((fn, args), self._path(f"job{job}.pt"))
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            raise ValueError(f"the arguments cannot be sent to a worker ({e}): pass data, "
                             "configs and module-level functions, not lambdas or closures"
                             ) from None
        self._jobs += 1
        results = [self._path(f"result{job}_{r}.pt") for r in range(self.world_size)]
        deadline = time.monotonic() + (timeout or self.timeout)
        while not all(os.path.exists(r) for r in results):
            failed = [r for r, p in enumerate(self._procs) if p.poll() is not None]
            if failed:
                message = self._last_words(failed[0], job)
                self.close(wait=0)
                raise WorkerFailed(f"worker {failed[0]} failed:\n{message}")
            if time.monotonic() > deadline:
                self.close(wait=0)
                raise WorkerFailed(f"the workers did not finish within {timeout or self.timeout:g}"
                                   " s: the machine may be busy; try again with a longer timeout")
            time.sleep(0.01)
        # Our own files, in a private 0700 temporary folder, holding whatever fn returned:
        # unpickling them is needed, and no file from anyone else is ever read here.
        return [torch.load(r, weights_only=False) for r in results]

    def _last_words(self, rank: int, job: int, chars: int = 3000) -> str:
        for name in (f"error{job}_{rank}.txt", f"log{rank}.txt"):
            path = self._path(name)
            if os.path.exists(path) and os.path.getsize(path):
                with open(path) as f:
                    return f.read()[-chars:]
        return "(it printed nothing: it may have been killed, e.g. for lack of memory)"

    def close(self, wait: float = 10.0) -> None:
        """Ask the workers to leave the group and exit; after ``wait`` seconds stop any left."""
        if not self._procs:
            return
        open(self._path("stop"), "w").close()
        deadline = time.monotonic() + wait
        for p in self._procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._procs = []
        self._dir.cleanup()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        for p in getattr(self, "_procs", []):
            if p.poll() is None:
                p.kill()


def launch(fn: Callable, world_size: int, *args, timeout: float = 120.0, threads: int = 1):
    """Start ``world_size`` workers, run one job ``fn(rank, world_size, *args)``, stop them."""
    with Workers(world_size, timeout=timeout, threads=threads) as workers:
        return workers.run(fn, *args)


def worker_main() -> None:
    """One worker process: join the group, then run jobs until told to stop."""
    folder, rank, world_size, threads, timeout, parent = sys.argv[1:7]
    rank, world_size = int(rank), int(world_size)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(int(threads))
    path = lambda name: os.path.join(folder, name)
    job = 0
    try:
        dist.init_process_group("gloo", init_method=f"file://{path('rendezvous')}", rank=rank,
                                world_size=world_size, timeout=timedelta(seconds=float(timeout)))
        while True:
            if os.path.exists(path(f"job{job}.pt")):
                fn, args = torch.load(path(f"job{job}.pt"), weights_only=False)
                atomic_torch_save(fn(rank, world_size, *args), path(f"result{job}_{rank}.pt"))
                job += 1
            elif os.path.exists(path("stop")) or os.getppid() != int(parent):
                break  # asked to stop, or the notebook that started us is gone
            else:
                time.sleep(0.005)
        cleanup_distributed()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # every result is on disk: skip the interpreter's slow teardown of torch
    except BaseException:
        with open(path(f"error{job}_{rank}.txt"), "w") as f:
            f.write(traceback.format_exc(limit=8))
        sys.exit(1)
