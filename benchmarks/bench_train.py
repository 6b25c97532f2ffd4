"""Training speed of the course's GPT presets on this machine, against a minimal reference.

For each preset that fits the device it prints the time of a full training step
(forward, backward, clipping, AdamW) through ``llmtrain.core.train.Trainer``, the
tokens per second, the model FLOPs utilisation (MFU), and the same for a plain,
minimal GPT of the same shape trained by a bare loop written in this file
(``RefGPT``, ``reference_throughput``), with the ratio Trainer / reference.

MFU = achieved model FLOP/s over the peak: 6 N + 12 L C T FLOPs per token
(N parameters without the position embeddings, L layers, C width, T context;
Kaplan et al. 2020 and PaLM appendix B). On a CUDA GPU the peak is the
datasheet's dense bf16 rate (``llmtrain.core.device.GPU_SPECS``; ``--peak-tflops``
for a GPU not in the table); on the CPU it is the float32 matmul rate measured
here. Both loops use the device policy: bf16 autocast, TF32, fused AdamW and
``torch.compile`` on CUDA (``--compile off`` to compare eager), fp32 on the CPU.

    python benchmarks/bench_train.py                    # CPU: nano .. small
    python benchmarks/bench_train.py --device cuda      # GPU: nano .. gpt2-xl, where they fit
    python benchmarks/bench_train.py --presets gpt2 --batch 16 --steps 30
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmtrain.core import device as dev
from llmtrain.core.batches import LMBatches
from llmtrain.core.model import GPT, GPTConfig, preset
from llmtrain.core.train import Callback, TrainConfig, Trainer

CPU_PRESETS = "nano,micro,tiny,small"
GPU_PRESETS = "tiny,medium,gpt2,gpt2-medium,gpt2-large,gpt2-xl"
# (batch, block) per preset on a GPU: GPT-2 sizes read their full 1,024-token context
GPU_SHAPES = {"gpt2": (16, 1024), "gpt2-medium": (8, 1024), "gpt2-large": (8, 1024),
              "gpt2-xl": (4, 1024)}


# --- a plain, minimal GPT of the same shape (the reference) -------------------------
class RefBlock(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.n_head = c.n_head
        self.ln1, self.ln2 = nn.LayerNorm(c.n_embd, bias=False), nn.LayerNorm(c.n_embd, bias=False)
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=False)
        self.out = nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.up = nn.Linear(c.n_embd, 4 * c.n_embd, bias=False)
        self.down = nn.Linear(4 * c.n_embd, c.n_embd, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.n_head, C // self.n_head).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(B, T, C))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class RefGPT(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.tok, self.pos = nn.Embedding(c.vocab_size, c.n_embd), nn.Embedding(c.block_size,
                                                                                c.n_embd)
        self.blocks = nn.Sequential(*[RefBlock(c) for _ in range(c.n_layer)])
        self.ln = nn.LayerNorm(c.n_embd, bias=False)
        self.head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.head.weight = self.tok.weight
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        logits = self.head(self.ln(self.blocks(x)))
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def reference_step_times(config: GPTConfig, batches, device, steps: int, warmup: int,
                         policy: dev.DevicePolicy) -> list[float]:
    """Seconds of each timed step of the bare loop: the same data, autocast, clipping, AdamW."""
    torch.manual_seed(0)
    model = RefGPT(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=policy.fused_adamw or None)
    step_fn = torch.compile(model) if policy.compile else model
    amp = (torch.autocast(device.type, dtype=policy.autocast_dtype) if policy.autocast_dtype
           else torch.autocast(device.type, enabled=False))
    times, last = [], time.perf_counter()
    for i in range(warmup + steps):
        x, y = dev.to_device(batches(i), device)
        with amp:
            loss = step_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)  # only to read the clock; the Trainer reads its loss every step anyway
        now = time.perf_counter()
        if i >= warmup:
            times.append(now - last)
        last = now
    return times


# --- the course's Trainer ---------------------------------------------------------------
def trainer_step_times(config: GPTConfig, batches, device, steps: int, warmup: int,
                       compile: bool | None) -> tuple[list[float], int]:
    """Seconds of each ``Trainer.fit`` step after ``warmup`` steps, and the parameter count."""
    torch.manual_seed(0)
    model = GPT(config)
    times, marks = [], {}

    class Clock(Callback):
        def on_train_start(self, trainer):
            marks["last"] = time.perf_counter()

        def on_step(self, trainer, step, loss):
            _sync(device)
            now = time.perf_counter()
            if step > warmup:
                times.append(now - marks["last"])
            marks["last"] = now

    cfg = TrainConfig(max_steps=warmup + steps, device=str(device), progress=False,
                      compile=compile, lr=1e-4, log_every=10**9)
    Trainer(model, batches, cfg, callbacks=[Clock()]).fit()
    return times, model.num_params()


def flops_per_token(config: GPTConfig, n_params: int) -> float:
    """6 N (weights, forward and backward) + 12 L C T (attention scores and sums)."""
    n = n_params - config.block_size * config.n_embd  # leave out the position embeddings
    return 6 * n + 12 * config.n_layer * config.n_embd * config.block_size


def measured_matmul_flops(device, n: int = 4096, reps: int = 10, trials: int = 5) -> float:
    """FLOP/s of a large square matmul here (bf16 on CUDA, fp32 elsewhere): the best of a
    few trials, since a shared machine only ever makes a trial slower."""
    n = n if device.type == "cuda" else 1024
    reps = reps if device.type == "cuda" else 2
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(trials):
        _sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start))
    return best


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return 0.5 * (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2])


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--presets", default=None, help=f"CPU default {CPU_PRESETS}; GPU {GPU_PRESETS}")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (CPU 10, GPU 20)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps (CPU 2, GPU 5)")
    ap.add_argument("--batch", type=int, default=None, help="windows per step (default per preset)")
    ap.add_argument("--block", type=int, default=None, help="tokens per window")
    ap.add_argument("--vocab", type=int, default=None, help="default 2048; GPT-2 sizes 50304")
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the GPU's dense bf16 peak, if it is not in "
                         "llmtrain.core.device.GPU_SPECS")
    ap.add_argument("--rounds", type=int, default=None,
                    help="alternate Trainer and reference this many times (CPU 3, GPU 1): "
                         "medians over all rounds resist a busy machine")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads (default: all cores; 1 is steadier on a shared machine)")
    ap.add_argument("--no-reference", action="store_true", help="skip the minimal reference GPT")
    args = ap.parse_args()

    dev.set_threads(args.threads)
    device = dev.pick_device(args.device)
    cuda = device.type == "cuda"
    compile = {"auto": None, "on": True, "off": False}[args.compile]
    policy = dev.policy(device, compile=compile)
    dev.enable_tf32(device)
    steps = args.steps or (20 if cuda else 10)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 2)
    matmul = measured_matmul_flops(device)
    if cuda:
        spec = dev.gpu_spec(torch.cuda.get_device_name(device))
        peak = args.peak_tflops * 1e12 if args.peak_tflops else (spec.peak_flops if spec else None)
        where = (f"{spec.name} datasheet" if spec and not args.peak_tflops else "--peak-tflops")
        peak_text = f"peak {peak / 1e12:,.0f} TFLOP/s ({where})" if peak else "peak unknown"
    else:
        peak, peak_text = matmul, "peak = the measured matmul rate"
    print(f"device: {dev.describe(device)}")
    print(f"policy: autocast {policy.autocast_dtype}, TF32 {policy.tf32}, fused AdamW "
          f"{policy.fused_adamw}, compile {policy.compile}, pinned copies {policy.pin_memory}")
    print(f"one {'4096' if cuda else '1024'}^3 matmul: {matmul / 1e12:,.2f} TFLOP/s; MFU uses "
          f"{peak_text}; {warmup} warm-up + {steps} timed steps")
    header = (f"{'preset':12} {'params':>13} {'batch x T':>11} {'step ms':>9} {'tokens/s':>11} "
              f"{'MFU':>6} {'ref ms':>9} {'ref tok/s':>11} {'ref MFU':>7} {'ratio':>6}")
    print(header)
    for name in (args.presets or (GPU_PRESETS if cuda else CPU_PRESETS)).split(","):
        batch, block = GPU_SHAPES.get(name, (64, 256)) if cuda else (16, 128)
        batch, block = args.batch or batch, args.block or block
        vocab = args.vocab or (50304 if name.startswith("gpt2") else 2048)
        config = preset(name, vocab_size=vocab, block_size=block)
        batches = LMBatches(torch.randint(0, vocab, (max(200_000, 4 * batch * block),)), block,
                            batch)
        ours, theirs = [], []
        try:
            for _ in range(args.rounds or (1 if cuda else 3)):
                times, n = trainer_step_times(config, batches, device, steps, warmup, compile)
                ours += times
                if not args.no_reference:
                    theirs += reference_step_times(config, batches, device, steps, warmup, policy)
        except torch.cuda.OutOfMemoryError:
            print(f"{name:12} does not fit in this GPU's memory at {batch} x {block}")
            torch.cuda.empty_cache()
            continue
        step = _median(ours)
        ref = _median(theirs) if theirs else None
        tokens = batch * block
        work = tokens * flops_per_token(config, n)  # FLOPs of one step
        mfu = lambda seconds, work=work: f"{work / seconds / peak:6.1%}" if peak else "   n/a"
        line = (f"{name:12} {n:13,d} {f'{batch} x {block}':>11} {step * 1e3:9.1f} "
                f"{tokens / step:11,.0f} {mfu(step)}")
        if ref is not None:
            line += (f" {ref * 1e3:9.1f} {tokens / ref:11,.0f} {mfu(ref):>7} "
                     f"{ref / step:6.2f}")
        if cuda:
            line += f"   peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
            torch.cuda.reset_peak_memory_stats(device)
        print(line, flush=True)
    print("step times are medians over every timed step; ratio = reference step time / Trainer "
          "step time (>= 1: the Trainer is as fast or faster)")
    generation(device)


def generation(device):
    """Sampling 32 tokens for 64 prompts, with and without the KV cache."""
    model = GPT(preset("tiny", vocab_size=2048, block_size=128)).to(device).eval()
    prompt = torch.randint(0, 2048, (64, 16), device=device)
    for cache in (True, False):
        model.generate(prompt, 2, temperature=1.0, use_cache=cache)  # warm-up
        _sync(device)
        t = time.perf_counter()
        model.generate(prompt, 32, temperature=1.0, use_cache=cache)
        _sync(device)
        print(f"generate 64 x 32 tokens (tiny), KV cache {'on ' if cache else 'off'}: "
              f"{(time.perf_counter() - t) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
