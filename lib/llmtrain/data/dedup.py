"""Deduplication of web documents: exact hashes, MinHash + LSH, repeated lines.

A web crawl repeats itself. The same article is mirrored on many sites, pages
differ only in a date or an advert, and every page of a site carries the same
cookie banner. Training on repeats wastes compute and teaches the model to
recite, so pretraining pipelines remove them at three levels, one function
(or class) each here:

1. **Exact duplicates.** ``normalize`` maps a document to a canonical form
   (Unicode NFKC, lower case, no punctuation, single spaces);
   ``exact_duplicates`` hashes that form and flags every document whose hash was
   seen before. One pass, linear time.

2. **Near duplicates.** Two documents are compared by the *Jaccard similarity*
   of their sets of word n-grams ("shingles"): ``|A & B| / |A | B|``. Comparing
   every pair is quadratic, so:

   * ``MinHasher`` compresses each shingle set to a *signature* of ``num_perm``
     numbers. Position ``i`` holds the smallest value of the ``i``-th random
     hash function over the set. Two sets have the same minimum with
     probability exactly their Jaccard similarity, so the fraction of equal
     positions (``estimate_jaccard``) is an unbiased estimate of it.
   * ``LSH`` (locality-sensitive hashing) cuts the signature into ``bands``
     bands of ``rows`` numbers and puts documents whose band is identical into
     the same bucket. Only documents that share a bucket in some band become
     *candidate pairs*. A pair with similarity ``s`` becomes a candidate with
     probability ``1 - (1 - s**rows)**bands`` (``candidate_probability``): an
     S-shaped curve that jumps from ~0 to ~1 near ``lsh_threshold``.
   * ``near_duplicates`` checks each candidate's estimated similarity against a
     threshold and joins confirmed pairs into clusters (union-find); all but
     the first document of each cluster are dropped.

3. **Repeated lines.** ``repeated_lines`` removes lines (menus, banners,
   footers) that occur in many different documents.

Everything is deterministic: the hashes come from ``hashlib``, never from
Python's built-in ``hash()``, which is salted differently in every process.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: The prime of the universal hash functions: the Mersenne prime 2**31 - 1.
MERSENNE_PRIME = (1 << 31) - 1
#: Signature value of an empty document: larger than every hash value (< 2**31).
EMPTY = np.iinfo(np.uint32).max
# At most this many uint64 numbers (8 bytes each: 32 MB) go through one numpy
# hashing step; bigger steps are no faster and could fill a laptop's memory.
_CHUNK_ELEMENTS = 4_000_000

_NOT_WORD_OR_SPACE = re.compile(r"[^\w\s]")


# --------------------------------------------------------------------- checks


def _check_int(name: str, value, lo: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be a whole number >= {lo}, got {value!r}")


def _check_texts(texts) -> None:
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of documents (a list of str), "
                         "not a single str: wrap it as [text]")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] must be a str, got {type(t).__name__}")


# -------------------------------------------------------------- exact dedup


def normalize(text: str) -> str:
    """The canonical form that exact deduplication compares.

    Unicode NFKC (so "ﬁ" becomes "fi" and full-width letters become ASCII),
    lower case, every character that is neither a letter/digit/underscore nor
    whitespace removed ("don't" -> "dont"), runs of whitespace collapsed to one
    space, no space at either end.
    """
    if not isinstance(text, str):
        raise ValueError(f"normalize expects a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NOT_WORD_OR_SPACE.sub("", text)
    return " ".join(text.split())


def _content_hash(text: str) -> bytes:
    """A stable 16-byte fingerprint of a string (the same in every process)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def exact_duplicates(texts: Sequence[str]) -> list[bool]:
    """``True`` for every document whose normalised text equals an earlier one's.

    The first occurrence is kept (``False``); later copies are ``True``. Each
    document is hashed once and looked up in a set, so the time is linear in
    the total length of the texts.
    """
    _check_texts(texts)
    seen: set[bytes] = set()
    duplicate = []
    for text in texts:
        key = _content_hash(normalize(text))
        duplicate.append(key in seen)
        seen.add(key)
    return duplicate


# ----------------------------------------------------------- shingles, Jaccard


def shingles(text: str, n: int = 5) -> set[str]:
    """The set of word n-grams ("shingles") of the normalised text.

    Each shingle is ``n`` consecutive words joined by single spaces. A document
    with fewer than ``n`` words gives one shingle holding all its words; an
    empty document (after normalisation) gives the empty set.
    """
    _check_int("n (words per shingle)", n)
    words = normalize(text).split()
    if not words:
        return set()
    if len(words) < n:
        return {" ".join(words)}
    # zip walks n staggered copies of the word list in step and stops at the
    # shortest: it yields (w0..w[n-1]), (w1..wn), ... , one tuple per shingle
    return {" ".join(gram) for gram in zip(*(words[k:] for k in range(n)))}


def jaccard(a: set, b: set) -> float:
    """Jaccard similarity ``|a & b| / |a | b|``, from 0 (disjoint) to 1 (equal).

    Two empty sets count as identical: ``jaccard(set(), set()) == 1.0``. This
    matches MinHash, where two empty documents get the same signature.
    """
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


# ------------------------------------------------------------------- MinHash


def word_hash(word: str) -> int:
    """A stable 32-bit hash of one word: BLAKE2s with a 4-byte digest."""
    return int.from_bytes(hashlib.blake2s(word.encode("utf-8"), digest_size=4).digest(),
                          "little")


def _position_constant(k: int) -> int:
    """The fixed odd 64-bit multiplier of the word at position ``k`` of a shingle."""
    digest = hashlib.blake2s(f"shingle position {k}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1


def hash_shingle(shingle: str) -> int:
    """A stable 32-bit hash of one shingle, built from the hashes of its words.

        x = top 32 bits of ( sum_k word_hash(w_k) * C_k  mod 2**64 )

    where ``C_k`` is a fixed random odd number for position ``k``, so "a b" and
    "b a" get different hashes. Hashing words instead of whole shingles lets
    ``MinHasher`` hash each distinct word once and combine them with numpy.

    Here the wrap-around of 64-bit arithmetic is wanted: "mod 2**64" is exactly
    what uint64 does, and it mixes the bits. (The MinHash step below is
    different: it needs exact arithmetic mod p, so it must avoid overflow.)
    """
    words = shingle.split()
    total = sum(word_hash(w) * _position_constant(k) for k, w in enumerate(words))
    return (total % 2**64) >> 32


class MinHasher:
    """Turn documents into MinHash signatures of ``num_perm`` numbers each.

    Each shingle is first hashed to a 32-bit number ``x`` (``hash_shingle``).
    Then ``num_perm`` random *universal hash functions*

        h_i(x) = (a_i * x + b_i) mod p,   p = 2**31 - 1,  1 <= a_i < p,  0 <= b_i < p

    act like ``num_perm`` random shufflings of all possible shingles; the
    signature keeps, for each ``i``, the smallest ``h_i`` over the document's
    shingles.

    Why ``p = 2**31 - 1`` and not the popular ``2**61 - 1``: numpy computes in
    64-bit integers and silently wraps around on overflow. With ``x < 2**32``
    and ``a, b < 2**31``, ``a * x + b < 2**63 + 2**31 < 2**64``, so nothing
    overflows. With ``a`` up to ``2**61`` the product would need 93 bits, the
    result would wrap, and the "hash functions" would quietly stop being the
    family that the MinHash probability argument is about.

    An empty document gets the signature ``EMPTY`` (the largest uint32) in
    every position: larger than every real hash value, and equal for all empty
    documents.
    """

    def __init__(self, num_perm: int = 120, ngram: int = 5, seed: int = 0):
        _check_int("num_perm", num_perm)
        _check_int("ngram", ngram)
        _check_int("seed", seed, lo=0)
        self.num_perm, self.ngram, self.seed = int(num_perm), int(ngram), int(seed)
        rng = np.random.default_rng(seed)
        p = MERSENNE_PRIME
        self.a = rng.integers(1, p, size=num_perm, dtype=np.uint64)  # (num_perm,)
        self.b = rng.integers(0, p, size=num_perm, dtype=np.uint64)  # (num_perm,)
        self._c = np.array([_position_constant(k) for k in range(ngram)], dtype=np.uint64)

    def __repr__(self) -> str:
        return f"MinHasher(num_perm={self.num_perm}, ngram={self.ngram}, seed={self.seed})"

    def signature(self, text: str) -> np.ndarray:
        """The signature of one document: a ``(num_perm,)`` uint32 array."""
        return self.signatures([text])[0]

    def shingle_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The ``hash_shingle`` value of every shingle of every document, in one flat array.

        Returns ``(x, counts)``: ``x`` (uint64) holds document 0's shingle
        hashes, then document 1's, ...; ``counts[k]`` is how many belong to
        document ``k``. A shingle that occurs twice in a document is listed
        twice, which does not change the minimum.
        """
        _check_texts(texts)
        n = self.ngram
        # 1. Every word of every document, as an index into `vocab` (its distinct words).
        doc_words = [normalize(text).split() for text in texts]
        vocab: dict[str, int] = {}
        ids = [vocab.setdefault(w, len(vocab)) for words in doc_words for w in words]
        hashes = np.array([word_hash(w) for w in vocab], dtype=np.uint64)  # one per word
        wh = np.append(hashes[np.array(ids, dtype=np.int64)], np.zeros(n, np.uint64))
        # 2. Where each word's document ends, so no shingle crosses into the next one.
        lengths = np.array([len(words) for words in doc_words], dtype=np.int64)
        ends = np.cumsum(lengths)
        n_words = int(ends[-1]) if len(ends) else 0
        pos = np.arange(n_words)
        end = np.repeat(ends, lengths)  # (n_words,) end of the word's document
        # 3. The shingle starting at each word: sum_k wh[pos + k] * C_k, words inside only.
        total = np.zeros(n_words, dtype=np.uint64)
        for k in range(n):
            inside = pos + k < end
            total += np.where(inside, wh[k:k + n_words] * self._c[k], np.uint64(0))
        x = total >> np.uint64(32)
        # 4. Keep full shingles, plus the one short shingle of a document with < n words.
        short_doc = np.repeat(lengths < n, lengths)
        first_word = pos == end - np.repeat(lengths, lengths)
        keep = (pos + n <= end) | (short_doc & first_word)
        counts = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
        return x[keep], counts

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """Signatures of many documents: an ``(N, num_perm)`` uint32 array.

        Vectorised: all shingle hashes go into one flat array, a chunk of hash
        functions is applied to all of them at once, and
        ``np.minimum.reduceat`` takes the minimum over each document's stretch
        of the array.
        """
        x, counts = self.shingle_hashes(texts)
        sig = np.full((len(counts), self.num_perm), EMPTY, dtype=np.uint32)
        filled = counts > 0  # reduceat cannot handle empty stretches: skip them
        if not filled.any():
            return sig
        starts = np.concatenate(([0], np.cumsum(counts[filled])[:-1]))
        p = np.uint64(MERSENNE_PRIME)
        chunk = max(1, min(self.num_perm, _CHUNK_ELEMENTS // len(x)))
        buf = np.empty((chunk, len(x)), dtype=np.uint64)
        for lo in range(0, self.num_perm, chunk):
            hi = min(lo + chunk, self.num_perm)
            h = buf[: hi - lo]
            np.multiply(self.a[lo:hi, None], x[None, :], out=h)  # < 2**63: no overflow
            np.add(h, self.b[lo:hi, None], out=h)
            np.remainder(h, p, out=h)
            sig[filled, lo:hi] = np.minimum.reduceat(h, starts, axis=1).T
        return sig


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """MinHash estimate of the Jaccard similarity: the fraction of equal positions."""
    sig_a, sig_b = np.asarray(sig_a), np.asarray(sig_b)
    if sig_a.ndim != 1 or sig_a.shape != sig_b.shape or len(sig_a) == 0:
        raise ValueError(f"need two non-empty 1-D signatures of the same length, got shapes "
                         f"{sig_a.shape} and {sig_b.shape} (both from the same MinHasher?)")
    return float(np.mean(sig_a == sig_b))


# ----------------------------------------------------------------------- LSH


def candidate_probability(s: float, rows: int, bands: int) -> float:
    """Chance that a pair with Jaccard ``s`` shares a bucket in at least one band.

    One band of ``rows`` positions matches with probability ``s**rows``; all
    ``bands`` bands miss with probability ``(1 - s**rows)**bands``.
    """
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"s (a Jaccard similarity) must be in [0, 1], got {s!r}")
    _check_int("rows", rows)
    _check_int("bands", bands)
    return 1.0 - (1.0 - s**rows) ** bands


def lsh_threshold(rows: int, bands: int) -> float:
    """The similarity where the LSH S-curve rises: ``(1 / bands) ** (1 / rows)``.

    At this ``s`` one band matches with probability ``1 / bands``, so the pair is
    a candidate with probability ``1 - (1 - 1/bands)**bands`` (about 0.63). It is
    the usual rule of thumb for the steepest point of the curve; the exact
    inflection point, ``((rows - 1) / (rows * bands - 1)) ** (1 / rows)``, is
    close to it. ``rows=6, bands=20`` gives about 0.61.
    """
    _check_int("rows", rows)
    _check_int("bands", bands)
    return (1.0 / bands) ** (1.0 / rows)


class LSH:
    """Banded locality-sensitive hashing over MinHash signatures."""

    def __init__(self, bands: int = 20, rows: int = 6):
        _check_int("bands", bands)
        _check_int("rows", rows)
        self.bands, self.rows = int(bands), int(rows)

    def __repr__(self) -> str:
        return f"LSH(bands={self.bands}, rows={self.rows})"

    def candidate_pairs(self, signatures: np.ndarray) -> set[tuple[int, int]]:
        """Pairs ``(i, j)``, ``i < j``, of documents that share a bucket in some band.

        For each band, documents are grouped in a dict keyed by the bytes of
        their band slice; every pair inside a group is a candidate. The work is
        linear in the number of documents, plus the pairs inside big buckets.

        Most buckets hold a single document, so the dict ``first`` only stores
        the first document of each key (a plain int), and a list is made only
        for keys that come back. A list per document would be ~2x slower at
        100k documents, mostly spent in Python's garbage collector.
        """
        sig = np.asarray(signatures)
        if sig.ndim != 2:
            raise ValueError(f"signatures must be a 2-D array (documents, num_perm), "
                             f"got shape {sig.shape}")
        width = self.bands * self.rows
        if width > sig.shape[1]:
            raise ValueError(f"bands * rows = {self.bands} * {self.rows} = {width} is more than "
                             f"the signature width {sig.shape[1]}: use fewer bands or rows, "
                             f"or a MinHasher with num_perm >= {width}")
        pairs: set[tuple[int, int]] = set()
        for band in range(self.bands):
            part = np.ascontiguousarray(sig[:, band * self.rows:(band + 1) * self.rows])
            keys = part.view(np.dtype((np.void, part.strides[0]))).ravel().tolist()  # bytes
            first: dict[bytes, int] = {}  # band key -> first document with it
            buckets: dict[bytes, list[int]] = {}  # band key -> all its documents, if >= 2
            for doc, key in enumerate(keys):
                earlier = first.setdefault(key, doc)
                if earlier != doc:
                    buckets.setdefault(key, [earlier]).append(doc)
            for members in buckets.values():  # increasing order, so i < j in each pair
                pairs.update(itertools.combinations(members, 2))
        return pairs


# ----------------------------------------------------------- near duplicates


@dataclass
class NearDuplicates:
    """What ``near_duplicates`` found.

    ``drop[k]`` is ``True`` for every member of a cluster except its lowest
    index; ``clusters`` lists clusters of two or more documents (sorted);
    ``similarity[(i, j)]`` is the estimated Jaccard of each confirmed pair.
    """

    drop: list[bool]
    clusters: list[list[int]]
    n_candidates: int
    n_confirmed: int
    similarity: dict[tuple[int, int], float] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        return sum(self.drop)


def _clusters(n: int, pairs) -> list[list[int]]:
    """Union-find: join each pair; return the groups of >= 2 documents."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps the trees flat
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)  # the lowest index becomes the root
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(g for g in groups.values() if len(g) > 1)


def near_duplicates(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 120,
                    bands: int = 20, rows: int = 6, ngram: int = 5,
                    seed: int = 0) -> NearDuplicates:
    """Find clusters of near-duplicate documents with MinHash + LSH.

    1. MinHash signatures (``num_perm`` hashes of ``ngram``-word shingles).
    2. Candidate pairs from LSH with ``bands`` bands of ``rows`` rows.
    3. A candidate is confirmed if its estimated Jaccard is ``>= threshold``.
    4. Confirmed pairs are joined into clusters (so A~B and B~C put A, B, C
       together even if A and C were never compared); every cluster keeps its
       lowest-index document and drops the rest.

    Pick ``bands`` and ``rows`` so that ``lsh_threshold(rows, bands)`` sits below
    ``threshold``: pairs just above the threshold must become candidates.
    """
    _check_texts(texts)
    ok = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    if not ok or not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be a Jaccard similarity in (0, 1], got {threshold!r}")
    _check_int("bands", bands)
    _check_int("rows", rows)
    _check_int("num_perm", num_perm)
    if num_perm < bands * rows:
        raise ValueError(f"num_perm={num_perm} is smaller than bands * rows = {bands * rows}: "
                         f"raise num_perm or use fewer bands or rows")
    sigs = MinHasher(num_perm, ngram, seed).signatures(texts)
    candidates = sorted(LSH(bands, rows).candidate_pairs(sigs))
    similarity: dict[tuple[int, int], float] = {}
    step = 100_000  # verify in chunks of pairs to bound memory
    for lo in range(0, len(candidates), step):
        pairs = np.array(candidates[lo:lo + step], dtype=np.int64)
        est = (sigs[pairs[:, 0]] == sigs[pairs[:, 1]]).mean(axis=1)
        for (i, j), e in zip(pairs.tolist(), est.tolist()):
            if e >= threshold:
                similarity[(i, j)] = e
    clusters = _clusters(len(texts), similarity)
    drop = [False] * len(texts)
    for cluster in clusters:
        for k in cluster[1:]:
            drop[k] = True
    return NearDuplicates(drop=drop, clusters=clusters, n_candidates=len(candidates),
                          n_confirmed=len(similarity), similarity=similarity)


# ------------------------------------------------------------ repeated lines


@dataclass
class RepeatedLines:
    """What ``repeated_lines`` removed.

    ``texts`` are the cleaned documents; ``removed[k]`` lists the (stripped)
    lines taken out of document ``k``, in order; ``boilerplate`` maps each
    boilerplate line to the number of documents it occurs in.
    """

    texts: list[str]
    removed: list[list[str]]
    boilerplate: dict[str, int]


def repeated_lines(texts: Sequence[str], min_docs: int = 3) -> RepeatedLines:
    """Remove boilerplate: lines that occur in at least ``min_docs`` different documents.

    Lines are compared after stripping whitespace at both ends; empty lines
    are never boilerplate. A line counts once per document however often it
    repeats there. All other lines stay, in their order and with their own line
    endings. Two passes over the text: linear time.
    """
    _check_texts(texts)
    _check_int("min_docs", min_docs, lo=2)
    split = [text.splitlines(keepends=True) for text in texts]
    n_docs: Counter[str] = Counter()
    for lines in split:
        n_docs.update({line.strip() for line in lines} - {""})
    boilerplate = {line: c for line, c in n_docs.items() if c >= min_docs}
    cleaned, removed = [], []
    for lines in split:
        keep, gone = [], []
        for line in lines:
            (gone if line.strip() in boilerplate else keep).append(line)
        cleaned.append("".join(keep))
        removed.append([line.strip() for line in gone])
    return RepeatedLines(texts=cleaned, removed=removed, boilerplate=boilerplate)

