"""Training throughput of the course's GPT presets on this machine.

Prints tokens per second for a full training step (forward, backward, AdamW)
and the model FLOP utilisation (MFU): achieved 6*N*tokens/s (plus attention)
over the peak matmul rate measured here, so the ratio is comparable across
machines. Also times generation with and without the KV cache.

    python benchmarks/bench_train.py [--device auto] [--steps 10] [--batch 32] [--block 128]
"""

from __future__ import annotations

import argparse
import time

import torch

from llmtrain.data import LMBatches
from llmtrain.device import describe, pick_device, set_threads
from llmtrain.model import GPT, preset
from llmtrain.train import TrainConfig, Trainer


def peak_matmul_flops(device, n=1024, reps=20) -> float:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ a
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ a
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(name, device, steps, batch, block, vocab=2048, compile=False):
    torch.manual_seed(0)
    model = GPT(preset(name, vocab_size=vocab, block_size=block))
    tokens = torch.randint(0, vocab, (200_000,))
    cfg = TrainConfig(max_steps=steps + 3, device=str(device), progress=False, compile=compile)
    trainer = Trainer(model, LMBatches(tokens, block, batch), cfg)
    times = []

    class Clock:  # per-step wall time, skipping the warm-up steps
        def on_train_start(self, tr): self.t = time.perf_counter()
        def on_step(self, tr, step, loss):
            _sync(device)
            now = time.perf_counter()
            if step > 3:
                times.append(now - self.t)
            self.t = now
        def on_eval(self, *a): ...
        def on_train_end(self, tr): ...

    trainer.callbacks.append(Clock())
    trainer.fit()
    per_step = sorted(times)[len(times) // 2]
    n = model.num_params()
    c = model.config
    flops_per_token = 6 * n + 12 * c.n_layer * c.n_embd * block  # + attention (PaLM appendix B)
    return batch * block / per_step, flops_per_token, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--presets", default="nano,micro,tiny,small")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    set_threads()
    device = pick_device(args.device)
    peak = peak_matmul_flops(device)
    print(f"device: {describe(device)}; peak matmul {peak / 1e9:.0f} GFLOP/s")
    print(f"{'preset':8} {'params':>9} {'tokens/s':>10} {'MFU':>6}")
    for name in args.presets.split(","):
        tps, fpt, n = train_throughput(name, device, args.steps, args.batch, args.block,
                                       compile=args.compile)
        print(f"{name:8} {n:9,d} {tps:10,.0f} {tps * fpt / peak:6.1%}")
    model = GPT(preset("tiny", vocab_size=2048, block_size=128)).to(device).eval()
    prompt = torch.randint(0, 2048, (64, 16), device=device)
    for cache in (True, False):
        _sync(device)
        t = time.perf_counter()
        model.generate(prompt, 32, temperature=1.0, use_cache=cache)
        _sync(device)
        print(f"generate 64 x 32 tokens, KV cache {'on ' if cache else 'off'}: "
              f"{(time.perf_counter() - t) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
