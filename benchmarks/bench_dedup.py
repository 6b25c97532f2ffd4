"""Benchmark: MinHash + LSH near-duplicate detection on 10k and 100k short documents.

The documents are synthetic: 40-80 words drawn from a fixed made-up vocabulary
with Zipf-like word frequencies. About 10% of them are planted near-duplicates:
a copy of an earlier document with one word replaced. The benchmark times the
three stages (signatures, LSH candidates, the whole ``near_duplicates``), shows
how the time grows from 10k to 100k documents (a ratio near 10 means linear),
and how many planted pairs ended up in the same cluster (recall).

    PYTHONPATH=lib python benchmarks/bench_dedup.py [--sizes 10000 100000] [--threshold 0.7]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from llmtrain.data.dedup import LSH, MinHasher, jaccard, lsh_threshold, near_duplicates, shingles


def vocabulary(size: int) -> list[str]:
    """``size`` made-up words built from syllables ("ba", "kelo", "mitupa", ...)."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70 syllables
    combos = itertools.chain.from_iterable(
        itertools.product(syllables, repeat=k) for k in (1, 2, 3))
    return ["".join(parts) for parts in itertools.islice(combos, size)]


def synthetic_corpus(n_docs: int, dup_frac: float = 0.1, seed: int = 0,
                     vocab_size: int = 5000) -> tuple[list[str], list[tuple[int, int]]]:
    """``n_docs`` documents and the planted (original, near-copy) index pairs."""
    rng = np.random.default_rng(seed)
    words = np.array(vocabulary(vocab_size))
    zipf = 1.0 / np.arange(1, vocab_size + 1)
    n_dups = int(n_docs * dup_frac)
    n_orig = n_docs - n_dups
    lengths = rng.integers(40, 81, size=n_orig)
    ids = rng.choice(vocab_size, size=int(lengths.sum()), p=zipf / zipf.sum())
    docs = [list(chunk) for chunk in np.split(words[ids], np.cumsum(lengths)[:-1])]
    planted = []
    for _ in range(n_dups):  # copy an earlier document (maybe itself a copy), change a word
        src = int(rng.integers(0, len(docs)))
        copy = list(docs[src])
        copy[int(rng.integers(0, len(copy)))] = "edited"
        planted.append((src, len(docs)))
        docs.append(copy)
    return [" ".join(d) for d in docs], planted


def run(n_docs: int, threshold: float) -> float:
    texts, planted = synthetic_corpus(n_docs)
    print(f"\nN = {n_docs:,} documents ({len(planted):,} planted near-duplicates)")

    t0 = time.perf_counter()
    sigs = MinHasher(num_perm=120, ngram=5).signatures(texts)
    t_sig = time.perf_counter() - t0
    t0 = time.perf_counter()
    cands = LSH(bands=20, rows=6).candidate_pairs(sigs)
    t_lsh = time.perf_counter() - t0
    print(f"  MinHasher.signatures: {t_sig:6.2f} s ({n_docs / t_sig:,.0f} docs/s)")
    print(f"  LSH.candidate_pairs:  {t_lsh:6.2f} s ({n_docs / t_lsh:,.0f} docs/s), "
          f"{len(cands):,} candidate pairs")

    t0 = time.perf_counter()
    found = near_duplicates(texts, threshold=threshold)
    t_all = time.perf_counter() - t0
    print(f"  near_duplicates:      {t_all:6.2f} s ({n_docs / t_all:,.0f} docs/s), "
          f"{found.n_confirmed:,} confirmed pairs, {len(found.clusters):,} clusters, "
          f"{found.n_dropped:,} documents dropped")

    cluster_of = {k: c for c, members in enumerate(found.clusters) for k in members}
    hits = sum(i in cluster_of and cluster_of.get(j) == cluster_of[i] for i, j in planted)
    source = list(range(n_docs))  # the original each document was copied from
    for i, j in planted:
        source[j] = source[i]
    false_pairs = sum(source[i] != source[j] for i, j in found.similarity)
    true_j = np.mean([jaccard(shingles(texts[i]), shingles(texts[j])) for i, j in planted[:2000]])
    print(f"  recall: {hits:,} of {len(planted):,} planted pairs clustered "
          f"({hits / max(1, len(planted)):.1%}); mean true Jaccard of planted pairs "
          f"{true_j:.3f}; confirmed pairs of unrelated documents: {false_pairs:,}")
    return t_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                        help="corpus sizes to time")
    parser.add_argument("--threshold", type=float, default=0.7,
                        help="estimated Jaccard needed to confirm a pair (one changed word in a "
                             "40-80 word document leaves a Jaccard of 0.76-0.88)")
    args = parser.parse_args()
    print(f"MinHash 120 hashes of 5-word shingles; LSH 20 bands x 6 rows "
          f"(S-curve threshold {lsh_threshold(6, 20):.2f}); confirm at {args.threshold}")
    times = {n: run(n, args.threshold) for n in args.sizes}
    sizes = sorted(times)
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        print(f"\nt({hi:,}) / t({lo:,}) = {times[hi] / times[lo]:.1f} "
              f"(linear scaling would give {hi / lo:.0f})")


if __name__ == "__main__":
    main()
