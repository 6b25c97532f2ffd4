"""How fast are quantizing, dequantizing and a quantized layer? Prints numbers; asserts nothing.

    python benchmarks/bench_quant.py [--threads N]

For one 512 x 128 weight (the course model's MLP layer) and a 4096 x 4096 one: milliseconds
to quantize and to dequantize under a few schemes, and the forward time of a ``QuantLinear``
(which dequantizes on every call) against a plain ``nn.Linear`` on a batch of 32 x 128 tokens.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn

from llmtrain.compress.quant import QuantConfig, QuantLinear, quantize


def best_ms(fn, *args, repeat: int = 5) -> float:
    """The fastest of ``repeat`` calls of fn(*args), in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = [QuantConfig("absmax", 8, "channel"), QuantConfig("absmax", 4, "group", 64),
               QuantConfig("absmax", 3, "group", 64), QuantConfig("nf4", 4, "group", 64, True)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for out_f, in_f in ((512, 128), (4096, 4096)):
        w = torch.randn(out_f, in_f)
        print(f"\nweight {out_f} x {in_f} ({w.numel():,} values)")
        print(f"{'scheme':<22}{'quantize ms':>13}{'dequantize ms':>15}{'bits/weight':>13}")
        for cfg in configs:
            q = quantize(w, cfg)
            print(f"{cfg.label:<22}{best_ms(quantize, w, cfg):>13.2f}"
                  f"{best_ms(q.dequantize):>15.2f}{q.bits_per_weight:>13.3f}")
        linear = nn.Linear(in_f, out_f, bias=False)
        x = torch.randn(32 * 128 if in_f == 128 else 256, in_f)
        with torch.no_grad():
            plain = best_ms(linear, x)
            print(f"forward of {x.shape[0]} tokens: nn.Linear {plain:.2f} ms")
            for cfg in configs:
                layer = QuantLinear.from_linear(linear, cfg)
                print(f"  QuantLinear {cfg.label:<22}{best_ms(layer, x):8.2f} ms")


if __name__ == "__main__":
    main()
