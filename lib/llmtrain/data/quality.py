"""Document-quality filters for pretraining data: rules, PII masking, toxicity.

A web crawl holds far more junk than text worth learning from, and a
pretraining pipeline throws most of it away. This module has the four kinds of
filter that real pipelines combine, each small enough to read in one sitting:

1. **Heuristic rules** in the style of Gopher (Rae et al. 2021, "Scaling
   Language Models: Methods, Analysis & Insights from Training Gopher",
   appendix A: the MassiveText *quality filter* and *repetition filter*).
   ``quality_signals(text)`` measures a page (how many words, how long they
   are, how many lines are bullets, how much of it is repeated ...) and
   ``GopherRules`` turns the measurements into keep / drop decisions with the
   paper's thresholds.
2. **PII masking**: ``find_pii`` and ``mask_pii`` replace e-mail addresses and
   phone numbers with placeholders such as ``<EMAIL>``. Regular expressions
   miss some and over-match others; that trade-off is part of the lesson.
3. **A toxicity blocklist**: ``blocklist_hits`` looks words up in a tiny
   invented, classroom-safe ``BLOCKLIST``. It only sees the words on its list.
4. **A learned classifier**: ``HashedNgramClassifier`` is logistic regression
   on hashed word n-gram counts, trained with torch. It learns from labelled
   examples, so it can flag texts whose words are on no list.

``precision_recall`` and ``precision_recall_curve`` score any of them against
an answer key (for instance ``data.crawl``'s labels).

Why one module of about 650 lines: chapter 05 compares these four filters on
the same pages with the same scoring, and reading them side by side is the
lesson; each part is a numbered section.

What counts as a *word*
-----------------------
The Gopher rules use the simplest definition: a word is a run of characters
between whitespace, ``text.split()``. So ``"end."`` is a word of length 4 and
``"#tag"`` a word of length 4 that contains a symbol. Only the stop-word count
lowercases words and strips punctuation from their ends first, so that
``"The"`` and ``"and,"`` count as ``the`` and ``and``. Lines are the non-blank
lines of the text with surrounding whitespace removed.

Threshold convention
--------------------
Every threshold is *inclusive-keep*: a text exactly AT a threshold is kept.
``min_words = 50`` keeps a 50-word page and drops a 49-word one;
``max_symbol_ratio = 0.1`` keeps a ratio of exactly 0.1 and drops 0.1001.
"""

from __future__ import annotations

import math
import re
import string
import zlib
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------
# 1. Gopher-style heuristic rules
# --------------------------------------------------------------------------------------

#: Gopher's stop-word rule: a page of real English uses at least two of these.
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
#: Characters a bullet-point line starts with.
BULLETS = ("•", "-", "*", "·")
#: How a line that trails off ends ("..." or the single character "…").
ELLIPSES = ("...", "…")
TOP_NGRAM_SIZES = (2, 3, 4)
DUPLICATE_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)


def split_words(text: str) -> list[str]:
    """The words of ``text`` as the Gopher rules see them: split on whitespace."""
    return text.split()


def split_lines(text: str) -> list[str]:
    """The non-blank lines of ``text``, stripped of surrounding whitespace."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _fraction(part: float, whole: float) -> float:
    """part / whole, with 0.0 for an empty whole (an empty page has no bad lines)."""
    return part / whole if whole else 0.0


def _check_text(text) -> None:
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")


def _quality_part(text: str, words: list[str], lines: list[str]) -> dict[str, float]:
    """The signals of Gopher's quality filter (size, word shape, symbols, stop words)."""
    n_words = len(words)
    n_symbols = text.count("#") + sum(text.count(e) for e in ELLIPSES)
    bare = {w.strip(string.punctuation).lower() for w in words}
    return {
        "n_words": float(n_words),
        "mean_word_length": _fraction(sum(len(w) for w in words), n_words),
        "symbol_to_word_ratio": _fraction(n_symbols, n_words),
        "bullet_line_fraction": _fraction(sum(ln.startswith(BULLETS) for ln in lines), len(lines)),
        "ellipsis_line_fraction": _fraction(sum(ln.endswith(ELLIPSES) for ln in lines),
                                            len(lines)),
        "alpha_word_fraction": _fraction(sum(any(c.isalpha() for c in w) for w in words),
                                         n_words),
        "stop_words": float(len(bare & STOP_WORDS)),
    }


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    """Every run of ``n`` consecutive words, in order (overlapping)."""
    return list(zip(*(words[i:] for i in range(n))))


def _covered_chars(words: list[str], starts: list[int], n: int) -> int:
    """Characters of the words covered by n-grams starting at ``starts`` (each word once)."""
    starts_here = set(starts)
    covered, cover_until = 0, 0
    for i, word in enumerate(words):
        if i in starts_here:
            cover_until = i + n  # this n-gram covers words i .. i + n - 1
        if i < cover_until:
            covered += len(word)
    return covered


def _repetition_part(words: list[str], lines: list[str]) -> dict[str, float]:
    """The signals of Gopher's repetition filter (repeated lines and word n-grams)."""
    signals = {}
    # Repeated lines: every copy after the first one counts as a duplicate.
    seen, dup_lines, dup_chars = set(), 0, 0
    for line in lines:
        if line in seen:
            dup_lines += 1
            dup_chars += len(line)
        seen.add(line)
    signals["duplicate_line_fraction"] = _fraction(dup_lines, len(lines))
    signals["duplicate_line_char_fraction"] = _fraction(dup_chars, sum(len(ln) for ln in lines))

    word_chars = sum(len(w) for w in words)
    # The single most frequent n-gram (ties: the one seen first). A page where no
    # n-gram occurs twice scores 0: nothing is repeated.
    for n in TOP_NGRAM_SIZES:
        grams = _ngrams(words, n)
        covered = 0
        if grams:
            top, count = Counter(grams).most_common(1)[0]
            if count > 1:
                covered = _covered_chars(words, [i for i, g in enumerate(grams) if g == top], n)
        signals[f"top_ngram_char_fraction_{n}"] = _fraction(covered, word_chars)
    # Every n-gram that occurs more than once; overlapping copies count each word once.
    for n in DUPLICATE_NGRAM_SIZES:
        grams = _ngrams(words, n)
        counts = Counter(grams)
        repeated = [i for i, g in enumerate(grams) if counts[g] > 1]
        signals[f"duplicate_ngram_char_fraction_{n}"] = _fraction(
            _covered_chars(words, repeated, n), word_chars)
    return signals


def quality_signals(text: str) -> dict[str, float]:
    """Measure a document the way Gopher's quality and repetition filters do.

    Returns a dict of floats (words are ``text.split()``; see the module docstring):

    - ``n_words``: number of words.
    - ``mean_word_length``: mean characters per word (0.0 for no words).
    - ``symbol_to_word_ratio``: (number of "#" + number of "..." or "…") / words.
    - ``bullet_line_fraction``: share of lines starting with •, -, * or ·.
    - ``ellipsis_line_fraction``: share of lines ending with "..." or "…".
    - ``alpha_word_fraction``: share of words with at least one letter.
    - ``stop_words``: how many *different* words of ``STOP_WORDS`` appear.
    - ``duplicate_line_fraction``: share of lines that repeat an earlier line.
    - ``duplicate_line_char_fraction``: characters in those repeated lines / all line chars.
    - ``top_ngram_char_fraction_{2,3,4}``: characters of the words covered by the most
      frequent word n-gram / characters of all words (0.0 if no n-gram repeats).
    - ``duplicate_ngram_char_fraction_{5..10}``: characters of the words covered by
      n-grams that occur more than once / characters of all words.

    Fractions of nothing are 0.0, so an empty text has every signal 0.0.
    """
    _check_text(text)
    words, lines = split_words(text), split_lines(text)
    return {**_quality_part(text, words, lines), **_repetition_part(words, lines)}


# One row per threshold: (rule name, signal it reads, GopherRules field, "min" or "max").
# A "min" rule fails when signal < threshold; a "max" rule when signal > threshold.
_QUALITY_RULES = (
    ("min_words", "n_words", "min_words", "min"),
    ("max_words", "n_words", "max_words", "max"),
    ("mean_word_length", "mean_word_length", "min_mean_word_length", "min"),
    ("mean_word_length", "mean_word_length", "max_mean_word_length", "max"),
    ("symbol_ratio", "symbol_to_word_ratio", "max_symbol_ratio", "max"),
    ("bullet_lines", "bullet_line_fraction", "max_bullet_lines", "max"),
    ("ellipsis_lines", "ellipsis_line_fraction", "max_ellipsis_lines", "max"),
    ("alpha_words", "alpha_word_fraction", "min_alpha_words", "min"),
    ("stop_words", "stop_words", "min_stop_words", "min"),
)
_REPETITION_RULES = (
    ("duplicate_lines", "duplicate_line_fraction", "max_duplicate_lines", "max"),
    ("duplicate_line_chars", "duplicate_line_char_fraction", "max_duplicate_line_chars", "max"),
    *((f"top_{n}gram", f"top_ngram_char_fraction_{n}", f"max_top_{n}gram", "max")
      for n in TOP_NGRAM_SIZES),
    *((f"duplicate_{n}gram", f"duplicate_ngram_char_fraction_{n}", f"max_duplicate_{n}gram",
       "max") for n in DUPLICATE_NGRAM_SIZES),
)


def rule_names() -> tuple[str, ...]:
    """The names ``GopherRules.check`` can return, in the order it returns them."""
    return tuple(dict.fromkeys(rule for rule, *_ in _QUALITY_RULES + _REPETITION_RULES))


@dataclass(frozen=True)
class GopherRules:
    """Gopher's quality and repetition thresholds (Rae et al. 2021, appendix A).

    The defaults are the paper's values. Thresholds are inclusive-keep: a text
    exactly at a threshold passes. Set a field to ``None`` to switch its rule
    off, or change it with ``dataclasses.replace(rules, min_words=20)``.
    ``check(text)`` lists the rules a text fails; an empty list means keep it.
    """

    # --- quality filter -----------------------------------------------------------
    min_words: int | None = 50  # too short to be a document: menus, captions, error pages
    max_words: int | None = 100_000  # too long: dumps, logs, concatenated pages
    min_mean_word_length: float | None = 3.0  # lists of initials, numbers, broken tokens
    max_mean_word_length: float | None = 10.0  # URLs, hashes, base64 blobs, gibberish
    max_symbol_ratio: float | None = 0.1  # hashtag spam, "..." teasers, link farms
    max_bullet_lines: float | None = 0.9  # navigation menus and lists with no prose
    max_ellipsis_lines: float | None = 0.3  # truncated previews ("Read more...")
    min_alpha_words: float | None = 0.8  # tables of numbers, code, markup debris
    min_stop_words: int | None = 2  # not English prose: word salad, keyword lists, other scripts
    # --- repetition filter --------------------------------------------------------
    max_duplicate_lines: float | None = 0.3  # the same line over and over (boilerplate)
    max_duplicate_line_chars: float | None = 0.2  # the same long lines repeated
    max_top_2gram: float | None = 0.20  # one phrase stuffed in again and again (SEO spam)
    max_top_3gram: float | None = 0.18
    max_top_4gram: float | None = 0.16
    max_duplicate_5gram: float | None = 0.15  # long passages repeated (loops, copy-paste)
    max_duplicate_6gram: float | None = 0.14
    max_duplicate_7gram: float | None = 0.13
    max_duplicate_8gram: float | None = 0.12
    max_duplicate_9gram: float | None = 0.11
    max_duplicate_10gram: float | None = 0.10

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise ValueError(f"{f.name} must be a number >= 0 (or None to switch the rule "
                                 f"off), got {value!r}")
        for lo, hi in (("min_words", "max_words"),
                       ("min_mean_word_length", "max_mean_word_length")):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{lo} ({a}) must not be larger than {hi} ({b}): no text could "
                                 f"pass; lower {lo} or raise {hi}")

    def _failures(self, signals: dict[str, float], table) -> list[str]:
        failed = []
        for rule, signal, field_name, kind in table:
            threshold = getattr(self, field_name)
            if threshold is None:
                continue  # switched off
            value = signals[signal]
            if (value < threshold if kind == "min" else value > threshold):
                if rule not in failed:
                    failed.append(rule)
        return failed

    def failures(self, signals: dict[str, float]) -> list[str]:
        """The rules failed by precomputed ``quality_signals`` (cheap to re-run per threshold)."""
        missing = [s for _, s, _, _ in _QUALITY_RULES + _REPETITION_RULES if s not in signals]
        if missing:
            raise ValueError(f"signals lack {missing}; pass the dict from quality_signals(text)")
        return self._failures(signals, _QUALITY_RULES + _REPETITION_RULES)

    def check_quality(self, text: str) -> list[str]:
        """The quality-filter rules ``text`` fails (skips the slower repetition signals)."""
        _check_text(text)
        signals = _quality_part(text, split_words(text), split_lines(text))
        return self._failures(signals, _QUALITY_RULES)

    def check_repetition(self, text: str) -> list[str]:
        """The repetition-filter rules ``text`` fails."""
        _check_text(text)
        return self._failures(_repetition_part(split_words(text), split_lines(text)),
                              _REPETITION_RULES)

    def check(self, text: str) -> list[str]:
        """Names of every rule ``text`` fails, in ``rule_names()`` order; [] means keep."""
        return self.failures(quality_signals(text))

    def keep(self, text: str) -> bool:
        """True when ``text`` passes every rule that is switched on."""
        return not self.check(text)


# --------------------------------------------------------------------------------------
# 2. Personally identifiable information: e-mail addresses and phone numbers
# --------------------------------------------------------------------------------------

# name@domain.tld: a local part, "@", dot-separated domain labels, a 2+ letter top level.
EMAIL_PATTERN = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")

# Phone numbers. Each alternative is one format; the look-arounds stop a match from
# starting or ending inside a longer number, word or version string.
PHONE_PATTERN = re.compile(
    r"(?<![\w.+-])(?:"
    r"\+[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){2,5}"  # +44 20 7946 0958, +1 (555) 123-4567
    r"|\(\d{3}\) ?\d{3}-\d{4}"  # (555) 123-4567
    r"|\d{3}-\d{3}-\d{4}"  # 555-123-4567
    r"|\d{3}\.\d{3}\.\d{4}"  # 555.123.4567
    r")(?![\w-]|\.\d)")
# International numbers have 8 to 15 digits and no country code starts with 0 (ITU E.164);
# fewer digits is more likely arithmetic.
_PHONE_DIGITS = (8, 15)

DEFAULT_PLACEHOLDERS = {"EMAIL": "<EMAIL>", "PHONE": "<PHONE>"}


def find_pii(text: str) -> list[tuple[int, int, str]]:
    """Spans ``(start, end, kind)`` of e-mail addresses and phone numbers in ``text``.

    ``kind`` is ``"EMAIL"`` or ``"PHONE"``; ``text[start:end]`` is the match.
    Spans are sorted and never overlap. Recognised phone formats: international
    (``+44 20 7946 0958``) and the North American ``(555) 123-4567``,
    ``555-123-4567`` and ``555.123.4567``. Years (1987), dates (12 March 1987,
    1987-03-12) and version numbers (3.11.2) are not matched.
    """
    _check_text(text)
    spans = [(m.start(), m.end(), "EMAIL") for m in EMAIL_PATTERN.finditer(text)]
    for m in PHONE_PATTERN.finditer(text):
        digits = sum(c.isdigit() for c in m.group())
        if _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1]:
            spans.append((m.start(), m.end(), "PHONE"))
    spans.sort()
    kept: list[tuple[int, int, str]] = []
    for span in spans:  # e-mails come first at equal starts; drop anything overlapping
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


def mask_pii(text: str, placeholders: dict[str, str] | None = None) -> str:
    """``text`` with each PII span replaced by its kind's placeholder.

    ``placeholders`` maps kinds to replacements (default ``{"EMAIL": "<EMAIL>",
    "PHONE": "<PHONE>"}``); kinds left out are not masked. Masking twice gives
    the same text as masking once, as long as no placeholder looks like PII.
    """
    if placeholders is None:
        placeholders = DEFAULT_PLACEHOLDERS
    unknown = set(placeholders) - set(DEFAULT_PLACEHOLDERS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; use "
                         f"{sorted(DEFAULT_PLACEHOLDERS)}")
    pieces, last = [], 0
    for start, end, kind in find_pii(text):
        if kind in placeholders:
            pieces += [text[last:start], placeholders[kind]]
            last = end
    pieces.append(text[last:])
    return "".join(pieces)


# --------------------------------------------------------------------------------------
# 3. Toxicity: a blocklist
# --------------------------------------------------------------------------------------

#: Mild insults plus two invented slurs ("grobnak", "snivlet"). Real blocklists are
#: thousands of entries long and far worse; the filtering problem is the same.
BLOCKLIST = frozenset({"idiot", "moron", "stupid", "loser", "pathetic", "worthless", "dumb",
                       "imbecile", "grobnak", "snivlet"})


def blocklist_hits(text: str, blocklist: Sequence[str] | frozenset = BLOCKLIST) -> list[str]:
    """Every blocklisted word in ``text``, lowercased, in order (repeats included).

    Matching is whole-word and case-insensitive: "Idiot!" is a hit, "idiots" and
    "idiotic" are not (a blocklist only knows the exact forms on it).
    """
    _check_text(text)
    if isinstance(blocklist, str):
        raise ValueError("blocklist must be a collection of words, not one string")
    words = sorted({w.lower() for w in blocklist}, key=len, reverse=True)
    if not words:
        return []
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
    return [m.group().lower() for m in pattern.finditer(text)]


# --------------------------------------------------------------------------------------
# 4. A learned classifier: logistic regression on hashed word n-grams
# --------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9']+")


def word_ngrams(text: str, ngrams: Sequence[int] = (1, 2)) -> list[str]:
    """The classifier's features before hashing: lowercased word n-grams.

    Unlike the Gopher rules, punctuation is dropped, so "Idiot!" and "idiot" give
    the same feature. ``word_ngrams("You are a clown.", (1, 2))`` is
    ``["you", "are", "a", "clown", "you are", "are a", "a clown"]``.
    """
    tokens = _TOKEN.findall(text.lower())
    return [" ".join(tokens[i:i + n]) for n in ngrams for i in range(len(tokens) - n + 1)]


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("pass a list of texts, not a single string (wrap it: [text])")
    texts = list(texts)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise ValueError(f"every text must be a str; found {bad[0]}")
    return texts


@contextmanager
def _one_thread():
    """Run torch on one CPU thread, then restore the setting.

    The classifier's tensors are tiny, so extra threads only add waiting; on a
    busy 2-core machine they made training 20x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class HashedNgramClassifier:
    """Logistic regression on hashed word n-gram counts, trained with torch.

    Each text becomes a bag of feature ids: every word n-gram is hashed with
    CRC-32 (stable across runs and machines, unlike Python's ``hash``) into one of
    ``n_features`` buckets. The model keeps one weight per bucket; a text's logit
    is the sum of the weights of its n-grams plus a bias, and

        p(label 1 | text) = sigmoid(sum of weights + bias).

    Different n-grams can share a bucket (a *collision*); with 2**16 buckets and a
    few thousand distinct n-grams that is rare and mostly harmless. ``seed`` fixes
    the minibatch order (weights start at zero), so a fit is reproducible.
    """

    def __init__(self, n_features: int = 2**16, ngrams: Sequence[int] = (1, 2), seed: int = 0):
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 2:
            raise ValueError(f"n_features must be an integer >= 2, got {n_features!r}")
        ngrams = tuple(ngrams)
        if not ngrams or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                             for n in ngrams):
            raise ValueError(f"ngrams must be positive integers such as (1, 2), got {ngrams!r}")
        self.n_features, self.ngrams, self.seed = n_features, ngrams, int(seed)
        self.weight: torch.Tensor | None = None  # (n_features,) once fitted
        self.bias: torch.Tensor | None = None  # (1,)
        self.losses: list[float] = []  # mean training loss of each epoch (nats)

    def feature_id(self, ngram: str) -> int:
        """The bucket an n-gram is hashed into."""
        return zlib.crc32(ngram.encode("utf-8")) % self.n_features

    def features(self, text: str) -> list[int]:
        """The feature ids of one text (a repeated n-gram appears once per occurrence)."""
        return [self.feature_id(g) for g in word_ngrams(text, self.ngrams)]

    def _bags(self, docs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """All documents' feature ids in one flat tensor, and the document each belongs to."""
        ids = torch.tensor([i for d in docs for i in d], dtype=torch.long)
        owner = torch.repeat_interleave(torch.tensor([len(d) for d in docs], dtype=torch.long))
        return ids, owner

    def _logits(self, ids: torch.Tensor, owner: torch.Tensor, n_docs: int) -> torch.Tensor:
        # Every n-gram adds its weight to its document's logit: the dot product of the
        # document's count vector with the weights, without building the count vector.
        return torch.zeros(n_docs).index_add(0, owner, self.weight[ids]) + self.bias

    def fit(self, texts: Sequence[str], labels: Sequence[int], epochs: int = 60,
            lr: float = 0.05, weight_decay: float = 1e-4,
            batch_size: int | None = None) -> HashedNgramClassifier:
        """Train on ``texts`` with ``labels`` (0 or 1 each); returns ``self``.

        Minimises the binary cross-entropy with AdamW for ``epochs`` passes over
        the data, full-batch when ``batch_size`` is None, else in shuffled
        minibatches. ``weight_decay`` pulls the n-gram weights (not the bias)
        towards zero so rare n-grams cannot get extreme weights.
        """
        texts = _check_texts(texts)
        if not texts:
            raise ValueError("fit needs at least one text")
        y = np.asarray(labels)
        if y.ndim != 1 or len(y) != len(texts):
            raise ValueError(f"need one label per text: got {len(texts)} texts and labels of "
                             f"shape {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"labels must be 0 or 1 (or False/True); found "
                             f"{sorted(set(y.tolist()) - {0, 1})[:5]}")
        if len(set(y.tolist())) < 2:
            raise ValueError("labels contain only one class; give examples of both 0 and 1")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if batch_size is not None and (isinstance(batch_size, bool)
                                       or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None (full batch), "
                             f"got {batch_size!r}")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay)
                and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")

        docs = [self.features(t) for t in texts]
        target = torch.tensor(y.astype(np.float32))
        self.weight = torch.zeros(self.n_features, requires_grad=True)
        self.bias = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.AdamW([{"params": [self.weight], "weight_decay": weight_decay},
                                       {"params": [self.bias], "weight_decay": 0.0}], lr=lr)
        generator = torch.Generator().manual_seed(self.seed)
        n = len(docs)
        size = n if batch_size is None else min(batch_size, n)
        full = self._bags(docs) if size == n else None  # built once for full-batch training
        self.losses = []
        with _one_thread():
            for _ in range(epochs):
                order = torch.randperm(n, generator=generator) if size < n else torch.arange(n)
                total = 0.0
                for start in range(0, n, size):
                    batch = order[start:start + size]
                    ids, owner = full if size == n else self._bags([docs[i] for i in
                                                                   batch.tolist()])
                    logits = self._logits(ids, owner, len(batch))
                    loss = F.binary_cross_entropy_with_logits(logits, target[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(batch)
                self.losses.append(total / n)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)
        return self

    def _need_fit(self) -> None:
        if self.weight is None:
            raise RuntimeError("HashedNgramClassifier is not fitted yet: call .fit(texts, labels)")

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) probability of label 1 for each text (an empty list gives an empty array)."""
        self._need_fit()
        texts = _check_texts(texts)
        if not texts:
            return np.zeros(0)
        with torch.no_grad():
            logits = self._logits(*self._bags([self.features(t) for t in texts]), len(texts))
        return torch.sigmoid(logits.double()).numpy()

    def predict(self, texts: Sequence[str], threshold: float = 0.5) -> np.ndarray:
        """(N,) 0/1 labels: 1 where the probability of label 1 is >= ``threshold``."""
        if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {threshold!r}")
        return (self.predict_proba(texts) >= threshold).astype(int)

    def top_features(self, k: int, vocabulary_texts: Sequence[str],
                     label: int = 1) -> list[tuple[str, float]]:
        """The ``k`` n-grams of ``vocabulary_texts`` that push hardest towards ``label``.

        Hashing forgets the n-grams themselves, so the caller supplies texts to
        read them from. Returns ``(ngram, weight)`` pairs, strongest first.
        """
        self._need_fit()
        if label not in (0, 1):
            raise ValueError(f"label must be 0 or 1, got {label!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        grams = dict.fromkeys(g for t in _check_texts(vocabulary_texts)
                              for g in word_ngrams(t, self.ngrams))
        scored = [(g, float(self.weight[self.feature_id(g)])) for g in grams]
        scored.sort(key=lambda gw: gw[1], reverse=(label == 1))
        return scored[:k]


# --------------------------------------------------------------------------------------
# 5. Scoring a filter: precision and recall
# --------------------------------------------------------------------------------------

def _as_bools(name: str, values) -> np.ndarray:
    if isinstance(values, str):
        raise ValueError(f"{name} must be a sequence of booleans, not a string")
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must hold booleans (or 0/1), got values like {arr[:3]!r}")
    return arr.astype(bool)


def precision_recall(flagged: Sequence[bool], is_bad: Sequence[bool]) -> tuple[float, float]:
    """Precision and recall of a filter's decisions against the truth.

    ``precision`` = bad documents flagged / documents flagged (how clean the
    removed pile is); ``recall`` = bad documents flagged / bad documents (how much
    of the junk was caught).

    Conventions: if nothing is flagged, precision is 1.0 (the filter made no
    wrong accusation); if nothing is bad, recall is 1.0 (nothing was missed).
    """
    f, b = _as_bools("flagged", flagged), _as_bools("is_bad", is_bad)
    if len(f) != len(b):
        raise ValueError(f"flagged has {len(f)} entries but is_bad has {len(b)}; "
                         f"give one of each per document")
    caught = int((f & b).sum())
    n_flagged, n_bad = int(f.sum()), int(b.sum())
    precision = caught / n_flagged if n_flagged else 1.0
    recall = caught / n_bad if n_bad else 1.0
    return precision, recall


def precision_recall_curve(scores: Sequence[float], is_bad: Sequence[bool],
                           thresholds: Sequence[float],
                           higher_is_bad: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each threshold, as two arrays.

    A document is flagged when ``score >= threshold`` (a toxicity probability,
    say) or, with ``higher_is_bad=False``, when ``score <= threshold`` (a quality
    score, where low is bad). Same conventions as ``precision_recall``.
    """
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; every document needs a score")
    b = _as_bools("is_bad", is_bad)
    if len(s) != len(b):
        raise ValueError(f"scores has {len(s)} entries but is_bad has {len(b)}")
    thresholds = np.asarray(thresholds, dtype=float)
    if thresholds.ndim != 1 or not len(thresholds):
        raise ValueError("thresholds must be a non-empty list of numbers")
    pairs = [precision_recall(s >= t if higher_is_bad else s <= t, b) for t in thresholds]
    return np.array([p for p, _ in pairs]), np.array([r for _, r in pairs])
