"""Benchmark: fitting and scoring the counting models of chapter 01.

Chapter 01 fits a unigram and a bigram table on about 130k tokens over a
2,048-id vocabulary and scores held-out text with them; both are one
``bincount`` and one gather, so they should take well under a second. This
prints the seconds for a few corpus sizes, and the bigram's ratio to the size
before: the bigram has a fixed cost (normalising its V x V table, 4.2M cells at
V = 2,048) and then grows with the tokens, so 10x the tokens costs far less
than 10x the time until the tokens outnumber the cells.

    PYTHONPATH=lib python benchmarks/bench_ngram.py [--sizes 13000 130000 1300000] [--vocab 2048]
"""

from __future__ import annotations

import argparse
import time

import torch

from llmtrain.pretrain.ngram import BigramLM, UnigramLM


def timed(model_class, vocab: int, tokens: torch.Tensor, repeats: int = 5) -> float:
    """Best of ``repeats`` wall times of fit + loss, in seconds (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model_class(vocab).fit(tokens).loss(tokens)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[13_000, 130_000, 1_300_000])
    parser.add_argument("--vocab", type=int, default=2048)
    args = parser.parse_args()
    print(f"vocabulary {args.vocab:,}; best of 5 runs; torch threads {torch.get_num_threads()}")
    print(f"{'tokens':>10} {'unigram fit+loss (s)':>21} {'bigram fit+loss (s)':>20} {'ratio':>6}")
    previous = None
    for n in args.sizes:
        tokens = torch.randint(0, args.vocab, (n,), generator=torch.Generator().manual_seed(0))
        uni = timed(UnigramLM, args.vocab, tokens)
        bi = timed(BigramLM, args.vocab, tokens)
        ratio = f"{bi / previous:.1f}" if previous else "-"
        print(f"{n:>10,} {uni:>21.4f} {bi:>20.4f} {ratio:>6}")
        previous = bi


if __name__ == "__main__":
    main()
