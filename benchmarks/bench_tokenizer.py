"""Benchmark: train a 2,000-token BPE vocabulary on ~1 MB of English, then encode.

The text is Python's own documentation (``pydoc_data.topics``, about 0.47 MB,
repeated to reach the size asked for), which ships with every Python, so the
benchmark needs no download.

    PYTHONPATH=lib python benchmarks/bench_tokenizer.py [--vocab 2000] [--mb 1.0]
"""

from __future__ import annotations

import argparse
import time
from pydoc_data.topics import topics

from llmtrain.core.tokenizer import compression_stats, count_chunks, train_bpe


def english_text(n_bytes: int) -> str:
    """The pydoc topics concatenated (repeated if needed), cut to ``n_bytes`` characters."""
    base = "\n\n".join(topics[key] for key in sorted(topics))
    text = base
    while len(text.encode("utf-8")) < n_bytes:
        text += "\n\n" + base
    return text[:n_bytes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=2000, help="vocabulary size")
    parser.add_argument("--mb", type=float, default=1.0, help="megabytes of training text")
    args = parser.parse_args()

    text = english_text(int(args.mb * 1_000_000))
    n_bytes = len(text.encode("utf-8"))
    print(f"training text: {n_bytes / 1e6:.2f} MB")

    t0 = time.perf_counter()
    chunks = count_chunks(text)
    t_split = time.perf_counter() - t0
    print(f"pre-split: {sum(chunks.values()):,} chunks, {len(chunks):,} unique, {t_split:.2f} s")

    t0 = time.perf_counter()
    tok = train_bpe(text, args.vocab)
    t_train = time.perf_counter() - t0
    print(f"train_bpe(vocab_size={args.vocab}): {t_train:.2f} s "
          f"({len(tok.merges)} merges, vocab_size={tok.vocab_size})")

    stats = compression_stats(tok, text)
    print(f"tokens per byte: {stats['tokens_per_byte']:.3f} "
          f"(bytes per token: {stats['bytes_per_token']:.2f})")

    tok.encoding.encode_ordinary(text)  # warm up
    reps = 3
    t0 = time.perf_counter()
    for _ in range(reps):
        tok.encoding.encode_ordinary(text)
    t_enc = (time.perf_counter() - t0) / reps
    print(f"tiktoken encode (one thread): {n_bytes / 1e6 / t_enc:.1f} MB/s")


if __name__ == "__main__":
    main()
