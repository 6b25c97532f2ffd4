"""What chapters 14 and 15 spend their time on, with 1 and 2 CPU threads.

Chapter 14 trains `nano` GPTs on addition problems (rows of 15 or 51
character tokens); chapter 15 trains one `nano` GPT per generation on word
tokens (16 windows of 64). Models this small are limited by per-operation
overhead, not by arithmetic, so a second thread rarely helps and on a busy
machine it hurts: the chapters call ``setup(..., threads=1)``. This script
prints milliseconds per training step and seconds per experiment unit for
each thread count, wall clock and process CPU time.

    python benchmarks/bench_cot_collapse.py [--steps 60]
"""

from __future__ import annotations

import argparse
import time

import torch

from llmtrain.align.reasoning import CoTConfig, split_problems, train_adder
from llmtrain.data.collapse import CollapseConfig, CollapseLab


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per measurement")
    args = parser.parse_args()
    train, _ = split_problems(500, 10, 4)
    lab = CollapseLab(seed=0)
    print(f"{'threads':>7} {'workload':<34} {'ms/step wall':>12} {'ms/step cpu':>12}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for fmt in ("answer", "steps"):
            wall, cpu = timed(lambda f=fmt: train_adder(train, f, CoTConfig(steps=args.steps)))
            print(f"{threads:>7} {'ch14 addition, ' + fmt + ' format':<34} "
                  f"{1000 * wall / args.steps:>12.1f} {1000 * cpu / args.steps:>12.1f}")
        config = CollapseConfig(steps=args.steps)
        wall, cpu = timed(lambda c=config: lab.train(lab.real, c, seed=0))
        print(f"{threads:>7} {'ch15 one generation (training)':<34} "
              f"{1000 * wall / args.steps:>12.1f} {1000 * cpu / args.steps:>12.1f}")
    model = lab.train(lab.real, CollapseConfig(steps=1), seed=0)
    wall, cpu = timed(lambda: lab.sample(model, 111, 3000, 0.8, seed=0))
    print(f"ch15 sampling one corpus (>= 111 documents, >= 3,000 words): {wall:.2f} s wall, "
          f"{cpu:.2f} s cpu")
    wall, cpu = timed(lambda: lab.fact_recall(model))
    print(f"ch15 fact recall of one model: {wall:.2f} s wall, {cpu:.2f} s cpu")


if __name__ == "__main__":
    main()
