"""The data-filtering pipeline: stages in order, a funnel, and scores against the answer key.

``dedup`` and ``quality`` hold the individual filters. This module puts them in
the order a real pipeline runs them, reports what each stage kept (the
*funnel*), and measures each filter on its own against the labels of a
``crawl.Crawl``:

=====================  ==================================================  ========
stage                  what it does                                        action
=====================  ==================================================  ========
``exact_dedup``        drops pages whose normalised text was seen before   drop
``near_dedup``         drops near-copies found by MinHash + LSH            drop
``boilerplate_lines``  removes lines repeated across many pages            edit
``fix_encoding``       repairs mojibake (UTF-8 read as Windows-1252)       edit
``quality_rules``      Gopher quality rules (length, words, symbols)       drop
``repetition_rules``   Gopher repetition rules (repeated lines, n-grams)   drop
``toxicity``           a learned classifier's probability of "toxic"       drop
``pii``                masks e-mail addresses and phone numbers            edit
=====================  ==================================================  ========

Pages that look like source code skip the two Gopher stages, which were made
for prose: code has few stop words and many symbols and would be thrown away.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..world.fiction import course_world
from . import dedup, quality
from .crawl import Crawl, Page, messy_crawl

STAGES = ("exact_dedup", "near_dedup", "boilerplate_lines", "fix_encoding", "quality_rules",
          "repetition_rules", "toxicity", "pii")

# Gopher's thresholds, with one change: pages of the course world are short
# (a travel guide is ~80 words), so the minimum length is 30 words, not 50.
COURSE_RULES = quality.GopherRules(min_words=30)

# Which labels each filter is meant to catch (for precision and recall).
TARGETS: dict[str, tuple[str, ...]] = {
    "exact_dedup": ("duplicate",),
    "near_dedup": ("duplicate", "near_duplicate"),
    "boilerplate_lines": ("boilerplate",),
    "fix_encoding": ("mojibake",),
    "quality_rules": ("gibberish", "spam"),
    "repetition_rules": ("spam", "gibberish"),
    "toxicity": ("toxic",),
    "blocklist": ("toxic",),
    "pii": ("pii",),
}


# --- small filters that live here --------------------------------------------------
# "Ã" or "Â" followed by a Latin-1 continuation character, or "â€" (the start of
# every mangled curly quote and dash).
_MOJIBAKE_MARKS = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\u00e2\u20ac")


def mojibake_score(text: str) -> float:
    """Mojibake marks ("Ã©", "â€™", ...) per 100 characters: 0 for clean text."""
    return 100 * len(_MOJIBAKE_MARKS.findall(text)) / max(1, len(text))


def fix_mojibake(text: str) -> str:
    """Undo one round of UTF-8-read-as-Windows-1252, if that is what happened.

    Encode the text back to the bytes the wrong decoder saw and decode them as
    UTF-8. Text that was not mangled this way fails to round-trip (or has no
    marks) and is returned unchanged.
    """
    if not _MOJIBAKE_MARKS.search(text):
        return text
    try:
        return text.encode("cp1252").decode("utf-8")
    except UnicodeError:
        return text


_CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import |return\b|if .*:$|for .*:$|"
                        r"elif |else:|try:|except|with .*:$|@\w|#|\"\"\"|[\w.\[\]]+ ?[-+*/]?= )")


def looks_like_code(text: str) -> bool:
    """True when at least 30% of the non-blank lines look like Python statements."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return False
    return sum(bool(_CODE_LINE.match(line)) for line in lines) >= 0.3 * len(lines)


# --- configuration ---------------------------------------------------------------
@dataclass(frozen=True)
class FilterConfig:
    """Every knob of the pipeline, with the course's defaults."""
    stages: tuple[str, ...] = STAGES  # which stages run (always in STAGES order)
    near_threshold: float = 0.7  # estimated Jaccard at or above which two pages are near-copies
    num_perm: int = 128  # MinHash hashes per page
    bands: int = 32  # LSH bands ...
    rows: int = 4  # ... of this many rows: candidates above ~ (1/32)**(1/4) = 0.42
    ngram: int = 5  # words per shingle
    boilerplate_min_docs: int = 10  # a line on this many distinct pages is boilerplate
    rules: quality.GopherRules = COURSE_RULES
    toxicity_threshold: float = 0.5  # drop pages the classifier calls toxic with p >= this
    code_skips_rules: bool = True  # pages that look like code skip the Gopher stages
    seed: int = 0

    def __post_init__(self):
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; choose from {STAGES}")
        if not 0 < self.near_threshold <= 1:
            raise ValueError(f"near_threshold must be in (0, 1], got {self.near_threshold}")
        if not 0 <= self.toxicity_threshold <= 1:
            raise ValueError(f"toxicity_threshold must be a probability in [0, 1], "
                             f"got {self.toxicity_threshold}")
        if self.boilerplate_min_docs < 2:
            raise ValueError("boilerplate_min_docs must be >= 2 (a line on one page is just "
                             "a line)")


# --- the toxicity classifier ---------------------------------------------------------
def train_toxicity_classifier(n_pages: int = 1500, seed: int = 1,
                              world=None) -> quality.HashedNgramClassifier:
    """A classifier trained on a *different* labelled crawl (another seed), as a
    real team would train on a hand-labelled sample, then apply it to the whole crawl.

    Positives are the toxic comment lines; negatives are all other lines, the
    friendly comments included, so the classifier learns what toxic comments look like, not
    which topics toxic pages happen to be about.
    """
    crawl = messy_crawl(world or course_world(), n_pages, seed=seed)
    texts, labels = [], []
    for p in crawl.pages:
        bad = set(p.inserted) if p.label == "toxic" else set()
        for line in p.text.splitlines():
            if line.strip():
                texts.append(line)
                labels.append(int(line in bad))
    return quality.HashedNgramClassifier(seed=seed).fit(texts, labels, epochs=40)


def toxicity_scores(classifier: quality.HashedNgramClassifier, texts: Sequence[str]) -> np.ndarray:
    """A page's toxicity is that of its worst line."""
    lines, owner = [], []
    for k, text in enumerate(texts):
        for line in text.splitlines():
            if line.strip():
                lines.append(line)
                owner.append(k)
    scores = np.zeros(len(texts))
    if lines:
        p = classifier.predict_proba(lines)
        np.maximum.at(scores, np.array(owner), p)
    return scores


# --- the pipeline -------------------------------------------------------------------
@dataclass
class FunnelStep:
    stage: str
    documents: int  # pages left after the stage
    tokens: int  # tokens (or words, without a tokenizer) left after the stage
    dropped: int  # pages the stage removed
    edited: int  # pages the stage changed but kept


@dataclass
class Filtered:
    """The pages that survived, what happened at each stage, and who removed what."""
    pages: list[Page]  # survivors, in crawl order, with their cleaned text
    funnel: list[FunnelStep]
    removed_by: dict[int, str] = field(default_factory=dict)  # page id -> stage that dropped it
    edited_by: dict[int, list[str]] = field(default_factory=dict)  # page id -> stages that edited

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.pages]

    def kept_share(self, label: str, crawl: Crawl) -> float:
        """Share of the crawl's pages with ``label`` that survived the pipeline."""
        ids = [p.id for p in crawl.pages if p.label == label]
        if not ids:
            return float("nan")
        return sum(i not in self.removed_by for i in ids) / len(ids)


def _rule_flags(texts: Sequence[str], stage: str, config: FilterConfig) -> list[bool]:
    """Pages the Gopher quality or repetition rules drop (code is routed around them)."""
    rules = config.rules
    check = rules.check_quality if stage == "quality_rules" else rules.check_repetition
    return [not (config.code_skips_rules and looks_like_code(t)) and bool(check(t)) for t in texts]


def _count(texts: Sequence[str], tokenizer) -> int:
    if tokenizer is None:
        return sum(len(t.split()) for t in texts)
    return sum(len(row) for row in tokenizer.encode_batch(list(texts), allow_special=False))


def run_pipeline(crawl: Crawl, config: FilterConfig | None = None, classifier=None,
                 tokenizer=None) -> Filtered:
    """Run the stages of ``config`` in order; every stage sees only what earlier ones kept.

    ``classifier`` is the toxicity classifier (``train_toxicity_classifier()`` if
    None and the stage is on); ``tokenizer`` counts tokens for the funnel
    (words if None).
    """
    config = config or FilterConfig()
    pages = list(crawl.pages)
    funnel = [FunnelStep("crawl", len(pages), _count([p.text for p in pages], tokenizer), 0, 0)]
    removed_by: dict[int, str] = {}
    edited_by: dict[int, list[str]] = {}

    def drop(stage: str, mask: Sequence[bool]) -> None:
        nonlocal pages
        for p, d in zip(pages, mask):
            if d:
                removed_by[p.id] = stage
        pages = [p for p, d in zip(pages, mask) if not d]

    def edit(stage: str, new_texts: Sequence[str]) -> int:
        nonlocal pages
        n = 0
        out = []
        for p, t in zip(pages, new_texts):
            if t != p.text:
                edited_by.setdefault(p.id, []).append(stage)
                p = dataclasses.replace(p, text=t)
                n += 1
            out.append(p)
        pages = out
        return n

    for stage in STAGES:
        if stage not in config.stages:
            continue
        before, edited = len(pages), 0
        texts = [p.text for p in pages]
        if stage == "exact_dedup":
            drop(stage, dedup.exact_duplicates(texts))
        elif stage == "near_dedup":
            found = dedup.near_duplicates(texts, config.near_threshold, config.num_perm,
                                          config.bands, config.rows, config.ngram, config.seed)
            drop(stage, found.drop)
        elif stage == "boilerplate_lines":
            cleaned = dedup.repeated_lines(texts, config.boilerplate_min_docs).texts
            edited = edit(stage, [t if config.code_skips_rules and looks_like_code(t)
                                  else c.strip() for t, c in zip(texts, cleaned)])
            drop(stage, [not p.text.strip() for p in pages])
        elif stage == "fix_encoding":
            edited = edit(stage, [fix_mojibake(t) for t in texts])
        elif stage in ("quality_rules", "repetition_rules"):
            drop(stage, _rule_flags(texts, stage, config))
        elif stage == "toxicity":
            classifier = classifier or train_toxicity_classifier()
            drop(stage, toxicity_scores(classifier, texts) >= config.toxicity_threshold)
        elif stage == "pii":
            edited = edit(stage, [quality.mask_pii(t) for t in texts])
        funnel.append(FunnelStep(stage, len(pages), _count([p.text for p in pages], tokenizer),
                                 before - len(pages), edited))
    return Filtered(pages, funnel, removed_by, edited_by)


# --- each filter alone, scored against the labels --------------------------------------
@dataclass(frozen=True)
class FilterScore:
    name: str
    flagged: int
    precision: float
    recall: float
    targets: tuple[str, ...]


def flags_alone(crawl: Crawl, name: str, config: FilterConfig | None = None,
                classifier=None) -> np.ndarray:
    """Which pages filter ``name`` flags when it runs alone on the raw crawl."""
    config = config or FilterConfig()
    texts = crawl.texts
    if name == "exact_dedup":
        return np.array(dedup.exact_duplicates(texts))
    if name == "near_dedup":
        return np.array(dedup.near_duplicates(texts, config.near_threshold, config.num_perm,
                                              config.bands, config.rows, config.ngram,
                                              config.seed).drop)
    if name == "boilerplate_lines":
        removed = dedup.repeated_lines(texts, config.boilerplate_min_docs).removed
        return np.array([bool(r) and not (config.code_skips_rules and looks_like_code(t))
                         for r, t in zip(removed, texts)])
    if name == "fix_encoding":
        return np.array([fix_mojibake(t) != t for t in texts])
    if name in ("quality_rules", "repetition_rules"):
        return np.array(_rule_flags(texts, name, config))
    if name == "toxicity":
        classifier = classifier or train_toxicity_classifier()
        return toxicity_scores(classifier, texts) >= config.toxicity_threshold
    if name == "blocklist":
        return np.array([bool(quality.blocklist_hits(t)) for t in texts])
    if name == "pii":
        return np.array([bool(quality.find_pii(t)) for t in texts])
    raise ValueError(f"unknown filter {name!r}; choose from {list(TARGETS)}")


def boilerplate_line_scores(crawl: Crawl, min_docs: int = 10) -> tuple[float, float]:
    """Line-level precision and recall of boilerplate-line removal.

    Measured on the crawl's distinct prose pages (code is routed around it): of
    the lines removed, how many were inserted boilerplate; of the boilerplate
    lines, how many were removed.
    """
    seen, pages = set(), []
    for p in crawl.pages:
        if p.text not in seen and not looks_like_code(p.text):
            seen.add(p.text)
            pages.append(p)
    removed = dedup.repeated_lines([p.text for p in pages], min_docs).removed
    inserted = [set(p.inserted) if p.label == "boilerplate" else set() for p in pages]
    n_removed = sum(len(r) for r in removed)
    hits = sum(line in bad for r, bad in zip(removed, inserted) for line in r)
    n_bad = sum(len(b) for b in inserted)
    return (hits / n_removed if n_removed else 1.0), (hits / n_bad if n_bad else 1.0)


def score_alone(crawl: Crawl, name: str, config: FilterConfig | None = None,
                classifier=None) -> FilterScore:
    """Precision and recall of one filter on the raw crawl, against ``TARGETS[name]``."""
    flagged = flags_alone(crawl, name, config, classifier)
    is_bad = np.array([p.label in TARGETS[name] for p in crawl.pages])
    precision, recall = quality.precision_recall(flagged, is_bad)
    return FilterScore(name, int(flagged.sum()), precision, recall, TARGETS[name])
