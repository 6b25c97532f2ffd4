"""Deduplication: exact hashes, MinHash statistics, the LSH S-curve, clusters, boilerplate."""

from __future__ import annotations

import math

import numpy as np
import pytest

import llmtrain.data.dedup as dedup
from llmtrain.data.dedup import (
    EMPTY,
    LSH,
    MERSENNE_PRIME,
    MinHasher,
    candidate_probability,
    estimate_jaccard,
    exact_duplicates,
    hash_shingle,
    jaccard,
    lsh_threshold,
    near_duplicates,
    normalize,
    repeated_lines,
    shingles,
)


def pair_with_jaccard(tag: str, s: float, union: int = 60) -> tuple[str, str]:
    """Two documents of distinct words whose word sets have Jaccard exactly ``s``.

    With ``ngram=1`` the shingles are the words, so the shingle sets have this
    Jaccard too. ``tag`` makes the words unique to this pair.
    """
    common = round(s * union)
    only_a = (union - common) // 2
    words = [f"{tag}w{k}" for k in range(union)]
    a = words[:common] + words[common:common + only_a]
    b = words[:common] + words[common + only_a:]
    return " ".join(a), " ".join(b)


def random_docs(n_docs: int, n_words: int, seed: int, vocab: int = 500) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[f"v{k}" for k in rng.integers(0, vocab, n_words)] for _ in range(n_docs)]


# --------------------------------------------------------------------- exact


def test_normalize_gives_the_canonical_form():
    assert normalize("  Hello,   WORLD!\t ﬁne  Ｆｕｌｌ ") == "hello world fine full"
    assert normalize("Don't stop.\n\nNow") == "dont stop now"
    assert normalize(" \n ") == ""


def test_exact_duplicates_ignore_case_space_punctuation_but_not_words():
    base = "The cat sat on the mat. It was happy!"
    texts = [
        base,
        "the CAT sat on   the mat\nit was happy",  # same words: duplicate
        "The cat sat on the rug. It was happy!",  # one word differs: kept
        "The cat, sat on the mat -- it was happy?",  # duplicate again
        "The cat sat on the rug. It was happy!",  # copy of the one-word variant
    ]
    assert exact_duplicates(texts) == [False, True, False, True, True]
    assert exact_duplicates([]) == []


def test_shingles_and_jaccard_known_values():
    assert shingles("A b, C d", n=2) == {"a b", "b c", "c d"}
    assert shingles("only three words", n=5) == {"only three words"}
    assert shingles("  ...  ", n=5) == set()
    a, b = {"x", "y", "z"}, {"y", "z", "w", "v"}
    assert jaccard(a, b) == pytest.approx(2 / 5)
    assert jaccard(a, a) == 1.0 and jaccard(a, set()) == 0.0
    assert jaccard(set(), set()) == 1.0  # documented choice: two empty docs are identical
    x, y = pair_with_jaccard("t", 0.7)
    assert jaccard(shingles(x, 1), shingles(y, 1)) == pytest.approx(0.7)


# ------------------------------------------------------------------- MinHash


def test_signature_equals_the_universal_hash_formula():
    """Recompute with Python's exact big integers: catches any uint64 overflow."""
    mh = MinHasher(num_perm=64, ngram=3, seed=7)
    assert int(mh.a.max()) < MERSENNE_PRIME and int(mh.a.min()) >= 1
    texts = [
        "a quick brown fox jumps over the lazy dog and runs far away into the woods",
        "Two words",  # shorter than a shingle: one shingle of both words
        "the dog the dog the dog the dog",  # repeated shingles
        "",
        "one",
    ]
    sigs = mh.signatures(texts)
    for text, sig in zip(texts[:3] + texts[4:], np.delete(sigs, 3, axis=0)):
        xs = [hash_shingle(s) for s in shingles(text, 3)]
        expected = [min((int(a) * x + int(b)) % MERSENNE_PRIME for x in xs)
                    for a, b in zip(mh.a, mh.b)]
        assert sig.tolist() == expected, text
    # big a and x really occur, so a * x would overflow 64 bits with p = 2**61 - 1
    xs = [hash_shingle(s) for s in shingles(texts[0], 3)]
    assert max(xs) > 2**31 and int(mh.a.max()) * max(xs) > 2**61
    assert hash_shingle("a b c") != hash_shingle("c b a")  # word order matters


def test_hash_is_stable_across_processes():
    # a fixed value: Python's salted hash() would give a different number each run
    assert hash_shingle("hello world") == 884906871


def test_signatures_are_deterministic_and_depend_on_the_seed():
    texts = [" ".join(w) for w in random_docs(5, 40, seed=1)]
    s1 = MinHasher(seed=3).signatures(texts)
    assert s1.shape == (5, 120) and s1.dtype == np.uint32
    assert np.array_equal(s1, MinHasher(seed=3).signatures(texts))
    assert np.array_equal(s1[2], MinHasher(seed=3).signature(texts[2]))
    s2 = MinHasher(seed=4).signatures(texts)
    assert (s1 != s2).mean() > 0.9


def test_empty_documents_and_chunking(monkeypatch):
    mh = MinHasher(num_perm=50, ngram=2)
    texts = ["", "one two three four", "", "", "five six seven", "!!!"]
    sigs = mh.signatures(texts)
    for k in (0, 2, 3, 5):
        assert (sigs[k] == EMPTY).all()
    # documents between empty ones still get their own signature
    assert np.array_equal(sigs[1], mh.signature(texts[1]))
    assert np.array_equal(sigs[4], mh.signature(texts[4]))
    assert estimate_jaccard(sigs[0], sigs[2]) == 1.0
    assert estimate_jaccard(sigs[0], sigs[1]) == 0.0
    monkeypatch.setattr(dedup, "_CHUNK_ELEMENTS", 7)  # one hash function per step
    assert np.array_equal(sigs, mh.signatures(texts))


@pytest.mark.parametrize("j", [0.5, 0.8])
def test_minhash_estimate_is_unbiased(j):
    num_perm, n_pairs = 120, 200
    mh = MinHasher(num_perm=num_perm, ngram=1, seed=0)
    texts = [t for k in range(n_pairs) for t in pair_with_jaccard(f"p{k}", j)]
    sigs = mh.signatures(texts)
    est = np.array([estimate_jaccard(sigs[2 * k], sigs[2 * k + 1]) for k in range(n_pairs)])
    sd_expected = math.sqrt(j * (1 - j) / num_perm)  # binomial: num_perm coin flips
    assert abs(est.mean() - j) < 0.02  # sd of the mean is ~0.003
    assert 0.75 * sd_expected < est.std() < 1.25 * sd_expected


# ----------------------------------------------------------------------- LSH


def test_candidate_probability_and_threshold():
    assert candidate_probability(0.5, 6, 20) == pytest.approx(1 - (1 - 0.5**6) ** 20)
    assert candidate_probability(0.0, 6, 20) == 0.0
    assert candidate_probability(1.0, 6, 20) == 1.0
    t = lsh_threshold(6, 20)
    assert t == pytest.approx(0.0500 ** (1 / 6))
    # the threshold is close to where the S-curve is steepest
    s = np.linspace(0.01, 0.99, 981)
    curve = np.array([candidate_probability(x, 6, 20) for x in s])
    steepest = s[np.argmax(np.gradient(curve, s))]
    assert abs(steepest - t) < 0.05
    assert candidate_probability(t, 6, 20) == pytest.approx(1 - (1 - 1 / 20) ** 20)


def test_lsh_candidate_rate_follows_the_s_curve():
    """The overflow-bug catcher: measured candidate rates must match 1-(1-s^r)^b."""
    rows, bands, n_pairs = 6, 20, 300
    levels = [0.3, 0.5, 0.7, 0.9]
    texts = [t for s in levels for k in range(n_pairs) for t in pair_with_jaccard(f"s{s}p{k}", s)]
    sigs = MinHasher(num_perm=rows * bands, ngram=1, seed=1).signatures(texts)
    cands = LSH(bands=bands, rows=rows).candidate_pairs(sigs)
    assert all(i < j for i, j in cands)
    for level_index, s in enumerate(levels):
        first = 2 * n_pairs * level_index
        hits = sum((first + 2 * k, first + 2 * k + 1) in cands for k in range(n_pairs))
        expected = candidate_probability(s, rows, bands)
        tol = 4 * math.sqrt(expected * (1 - expected) / n_pairs) + 0.01
        assert abs(hits / n_pairs - expected) < tol, (s, hits / n_pairs, expected)
    planted = {(2 * k, 2 * k + 1) for k in range(len(texts) // 2)}
    assert len(cands - planted) <= 2  # documents from different pairs share no words


def test_lsh_buckets_identical_bands():
    sigs = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 5, 5, 5]], dtype=np.uint32)
    assert LSH(bands=2, rows=2).candidate_pairs(sigs) == {(0, 1), (0, 2)}
    assert LSH(bands=1, rows=4).candidate_pairs(sigs) == set()


# ----------------------------------------------------------- near duplicates


def test_near_duplicates_finds_planted_copies_only():
    docs = random_docs(30, 80, seed=2)
    edited = list(docs[3])
    edited[20], edited[60] = "changed", "words"  # 2 of 80 words changed
    texts = [" ".join(d) for d in docs]
    texts += [" ".join(edited), texts[7], texts[7].upper() + "!"]  # docs 30, 31, 32
    # two changed words destroy up to 10 of 76 five-word shingles: Jaccard 66/86 ~ 0.77
    true_j = jaccard(shingles(texts[3]), shingles(texts[30]))
    assert 0.7 < true_j < 0.8
    found = near_duplicates(texts, threshold=0.7)
    assert found.clusters == [[3, 30], [7, 31, 32]]
    assert found.drop == [k in (30, 31, 32) for k in range(33)]
    assert set(found.similarity) <= {(3, 30), (7, 31), (7, 32), (31, 32)}
    assert found.similarity[(7, 31)] == 1.0
    assert found.n_candidates >= found.n_confirmed == len(found.similarity) >= 3
    assert found.n_dropped == sum(len(c) - 1 for c in found.clusters)
    # unrelated documents share no candidate strong enough to be confirmed
    strict = near_duplicates(texts, threshold=1.0)
    assert strict.clusters == [[7, 31, 32]]


def test_near_duplicates_of_nothing_and_of_empty_docs():
    assert near_duplicates([]).clusters == []
    found = near_duplicates(["", "some words here", ""])
    assert found.clusters == [[0, 2]] and found.drop == [False, False, True]


# ------------------------------------------------------------ repeated lines


def test_repeated_lines_removes_boilerplate_and_keeps_order():
    banner = "We use cookies to improve your experience. Accept?"
    shared = "Posted in: gardening"
    texts = [
        f"Title {k}\n  {banner}  \nBody of page {k}.\n" + (f"{shared}\n" if k < 2 else "")
        for k in range(5)
    ]
    texts.append("A page without the banner\nbut two lines")
    out = repeated_lines(texts, min_docs=3)
    assert out.boilerplate == {banner: 5}
    assert out.texts[0] == f"Title 0\nBody of page 0.\n{shared}\n"
    assert out.texts[4] == "Title 4\nBody of page 4.\n"
    assert out.texts[5] == texts[5]
    assert out.removed[:5] == [[banner]] * 5 and out.removed[5] == []
    # a line repeated within one document counts once
    twice = repeated_lines(["x\nx\n", "x\n", "y\n"], min_docs=3)
    assert twice.boilerplate == {} and twice.texts == ["x\nx\n", "x\n", "y\n"]


# -------------------------------------------------------------------- errors


def test_clear_errors_for_bad_arguments():
    with pytest.raises(ValueError, match="not a single str"):
        exact_duplicates("one document")
    with pytest.raises(ValueError, match=r"texts\[1\] must be a str"):
        exact_duplicates(["ok", 3])
    with pytest.raises(ValueError, match="n .words per shingle. must be a whole number >= 1"):
        shingles("a b c", n=0)
    with pytest.raises(ValueError, match="num_perm must be a whole number >= 1"):
        MinHasher(num_perm=0)
    with pytest.raises(ValueError, match="signature width 60"):
        LSH(bands=20, rows=6).candidate_pairs(np.zeros((3, 60), dtype=np.uint32))
    with pytest.raises(ValueError, match="2-D array"):
        LSH().candidate_pairs(np.zeros(120, dtype=np.uint32))
    with pytest.raises(ValueError, match=r"threshold must be a Jaccard similarity in \(0, 1\]"):
        near_duplicates(["a"], threshold=0.0)
    with pytest.raises(ValueError, match="num_perm=100 is smaller than bands . rows = 120"):
        near_duplicates(["a"], num_perm=100)
    with pytest.raises(ValueError, match="same length"):
        estimate_jaccard(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"s \(a Jaccard similarity\) must be in \[0, 1\]"):
        candidate_probability(1.5, 6, 20)
    with pytest.raises(ValueError, match="min_docs must be a whole number >= 2"):
        repeated_lines(["a"], min_docs=1)
