"""How much a busy CPU slows training when OpenMP threads spin while they wait.

Chapter 06's live fine-tuning run (``sft.finetune`` of the base checkpoint, the same
arguments as the chapter's ``live_run``), timed in a fresh Python process four ways:
OpenMP's default wait policy (threads spin before they sleep: what a JupyterLab kernel had
when a chapter imported torch before llmtrain) or PASSIVE (what the course's kernel config
sets now), each on a quiet machine and beside busy processes (``while True: pass``, as a
browser tab or another notebook would be). torch is imported first, as in the chapters.

    python benchmarks/bench_busy_kernel.py [--steps 40] [--threads 2] [--busy 1] [--repeats 2]

Prints one table; nothing here is a test (times depend on the machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CELL = """
import time
import torch                                    # first, as in the chapters
torch.set_num_threads({threads})
from llmtrain.align import sft
from llmtrain.course import checkpoints, shared_data
from llmtrain.world.fiction import course_world

tok, world = shared_data.course_tokenizer(), course_world()
examples = sft.qa_examples(world, ("sft",))[:400]
torch.manual_seed(0)
model = checkpoints.load("base").train()
start = time.perf_counter()
sft.finetune(model, tok, examples, steps={steps}, batch_size=32, lr=3e-4, block_size=40,
             seed=0, device="cpu")
print(time.perf_counter() - start)
"""


def timed(policy: str | None, busy: int, steps: int, threads: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        out = subprocess.run([sys.executable, "-c", CELL.format(steps=steps, threads=threads)],
                             env=env, capture_output=True, text=True, check=True, timeout=900)
    finally:
        for h in hogs:
            h.kill()
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--busy", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(f"chapter 06's live fine-tuning, {args.steps} steps, {args.threads} threads, "
          f"{os.cpu_count()} cores; median of {args.repeats}")
    print(f"{'wait policy':<34}{'quiet s':>9}{f'{args.busy} busy s':>10}{'slowdown':>10}")
    for label, policy in (("default (threads spin, then sleep)", None), ("PASSIVE", "PASSIVE")):
        quiet = statistics.median(timed(policy, 0, args.steps, args.threads)
                                  for _ in range(args.repeats))
        loaded = statistics.median(timed(policy, args.busy, args.steps, args.threads)
                                   for _ in range(args.repeats))
        print(f"{label:<34}{quiet:>9.1f}{loaded:>10.1f}{loaded / quiet:>9.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
