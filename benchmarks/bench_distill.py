"""What chapter 12's distillation costs on this machine.

Prints the time per training step of each student shape with hard labels and
with soft targets (the distillation loss adds a softmax over the whole
vocabulary for the teacher and for the student), the time to cache the
teacher's logits and to let it rewrite the transfer set, and the sum over the
runs the chapter makes with its default parameters. A reference line (the
"tiny" preset, batch 32 x 128, hard labels) makes the numbers comparable with
FINDINGS.md's 15-20k tokens/s on an idle 2-core machine.

    python benchmarks/bench_distill.py [--threads N] [--steps 20]
    python benchmarks/bench_distill.py --lr-sweep   (the chapter's learning-rate rule, checked)

``--lr-sweep`` trains every student shape with hard labels for the chapter's
120 steps at several peak learning rates around the chapter's rule
(6e-3 x 64 / width) and prints the held-out loss of each: the rule should be
at or near the best for the hard-label baseline, so that the comparison with
soft targets is not rigged against it.
"""

from __future__ import annotations

import argparse
import time

import torch

from llmtrain.compress import distill
from llmtrain.core.batches import LMBatches
from llmtrain.core.device import set_threads
from llmtrain.core.model import GPT, preset
from llmtrain.core.train import TrainConfig, Trainer
from llmtrain.course import checkpoints, recipes, shared_data


def seconds_per_step(model, batches, loss_fn, steps: int) -> float:
    """Median wall time of one optimizer step, after two warm-up steps."""
    times = []

    class Clock:
        def on_train_start(self, tr): self.t = time.perf_counter()
        def on_step(self, tr, step, loss):
            now = time.perf_counter()
            if step > 2:
                times.append(now - self.t)
            self.t = now
        def on_eval(self, *a): ...
        def on_train_end(self, tr): ...

    cfg = TrainConfig(max_steps=steps + 2, lr=1e-3, device="cpu", progress=False)
    Trainer(model, batches, cfg, loss_fn=loss_fn, callbacks=[Clock()]).fit()
    return sorted(times)[len(times) // 2]


def lr_sweep(factors=(0.5, 0.75, 1.0, 1.5, 2.0), steps: int = 120) -> None:
    teacher, tok = checkpoints.load("base"), shared_data.course_tokenizer()
    base_docs = shared_data.corpus_documents(recipes.RECIPES["base"].corpus)
    corpus = shared_data.encode_documents(tok, base_docs)
    data = distill.transfer_set(teacher, corpus, 128, block_size=64)
    heldout = shared_data.heldout_tokens()
    print(f"hard labels, {steps} steps: held-out loss (nats/token) at lr = factor x rule")
    print(f"{'student':8} {'rule lr':>8} " + " ".join(f"{f:>7g}x" for f in factors))
    for name in distill.STUDENT_SHAPES:
        config = distill.student_config(name, tok.vocab_size)
        rule = 6e-3 * 64 / config.n_embd
        losses = [distill.train_student(config, data, heldout, steps=steps, lr=rule * f,
                                        device="cpu").final_loss for f in factors]
        print(f"{name:8} {rule:8.1e} " + " ".join(f"{x:8.3f}" for x in losses))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="default: every core")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr-sweep", action="store_true", help="check the learning-rate rule")
    args = ap.parse_args()
    threads = set_threads(args.threads)
    print(f"{threads} thread(s)")
    if args.lr_sweep:
        lr_sweep()
        return

    tokens = torch.randint(0, 2048, (200_000,))
    ref = seconds_per_step(GPT(preset("tiny", vocab_size=2048, block_size=128)),
                           LMBatches(tokens, 128, 32), distill.distillation_loss_fn(1.0, 0.0),
                           args.steps)
    print(f"reference: tiny 4 x 128, batch 32 x 128, hard labels: {32 * 128 / ref:,.0f} tokens/s")

    teacher, tok = checkpoints.load("base"), shared_data.course_tokenizer()
    base_docs = shared_data.corpus_documents(recipes.RECIPES["base"].corpus)
    corpus = shared_data.encode_documents(tok, base_docs)
    start = time.perf_counter()
    data = distill.transfer_set(teacher, corpus, 128, block_size=64)
    cache_s = time.perf_counter() - start
    start = time.perf_counter()
    distill.teacher_generations(teacher, data)
    generate_s = time.perf_counter() - start
    print(f"teacher: cache 128 windows x 64 in {cache_s:.2f} s; rewrite them in {generate_s:.2f} s")

    per_step = {}
    print(f"{'student':8} {'params':>9} {'hard ms/step':>13} {'soft ms/step':>13}")
    for name in distill.STUDENT_SHAPES:
        config = distill.student_config(name, tok.vocab_size)
        row = []
        for alpha in (0.0, 1.0):
            torch.manual_seed(0)
            model = GPT(config)
            batches = distill.TransferBatches(data, 16, soft=alpha > 0)
            row.append(seconds_per_step(model, batches, distill.distillation_loss_fn(1.0, alpha),
                                        args.steps))
        per_step[name] = row
        print(f"{name:8} {GPT(config).num_params():9,d} {row[0] * 1e3:13.1f} {row[1] * 1e3:13.1f}")

    steps = 120  # the chapter's defaults: nano with hard labels, T = 1, 2, 4 and the teacher's
    # text, pico and micro with hard labels and T = 1, and one playground run (soft)
    runs = {"nano": (2, 4), "pico": (1, 1), "micro": (1, 1)}
    total = sum(steps * (h * per_step[n][0] + s * per_step[n][1]) for n, (h, s) in runs.items())
    print(f"the chapter's default training runs: about {total + cache_s + generate_s:.0f} s of "
          "training on this machine (plus loading, evaluation and plots)")


if __name__ == "__main__":
    main()
