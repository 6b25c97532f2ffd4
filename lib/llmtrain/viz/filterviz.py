"""Pictures for chapter 05: one filter's threshold against the answer key, the funnel, LSH.

``page_signals`` measures every page of a crawl once (words, stop words,
repeated n-grams, near-duplicate similarity, lines shared with other pages,
toxicity ...). After that, moving a threshold is only a comparison, so
``threshold_view`` can redraw the precision/recall picture and pick examples
in milliseconds, which is what the chapter's sliders need.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from ..data import dedup, quality
from ..data.crawl import Crawl
from ..data.filtering import FilterConfig, toxicity_scores
from .plots import new_axes
from .widgets import Playground


@dataclass(frozen=True)
class Signal:
    """One number per page, and how a filter uses it."""
    description: str
    targets: tuple[str, ...]  # the labels this signal is meant to catch
    higher_is_bad: bool  # flag pages at or above the threshold (else at or below)
    lo: float
    hi: float
    default: float
    step: float


SIGNALS: dict[str, Signal] = {
    "words per page": Signal("pages this short are dropped (Gopher: 50 words)",
                             ("gibberish", "spam"), False, 0, 150, 30, 5),
    "mean word length": Signal("pages whose words are this long on average are dropped",
                               ("gibberish", "spam"), True, 3, 15, 10, 0.5),
    "stop words": Signal("pages with this few of the, be, to, of, and, that, have, with",
                         ("gibberish", "spam"), False, 0, 8, 1, 1),
    "top 2-gram share": Signal("share of characters in the most repeated word pair",
                               ("spam",), True, 0, 0.5, 0.2, 0.01),
    "duplicate 5-gram share": Signal("share of characters in 5-word sequences seen twice",
                                     ("spam", "gibberish"), True, 0, 0.6, 0.15, 0.01),
    "near-duplicate similarity": Signal("estimated Jaccard with the most similar earlier page",
                                        ("duplicate", "near_duplicate"), True, 0.3, 1.0, 0.7,
                                        0.02),
    "share in repeated lines": Signal("share of the page's characters in lines that other "
                                      "pages repeat (10+ distinct pages)", ("boilerplate",), True,
                                      0, 1, 0.15, 0.01),
    "toxicity (classifier)": Signal("the classifier's probability that the worst line is toxic",
                                    ("toxic",), True, 0, 1, 0.5, 0.01),
    "blocklist words": Signal("words from the blocklist on the page", ("toxic",), True, 1, 4, 1,
                              1),
}


def page_signals(crawl: Crawl, classifier, config: FilterConfig | None = None) -> dict:
    """Every signal of ``SIGNALS`` for every page of ``crawl``: name -> (N,) array."""
    config = config or FilterConfig()
    texts = crawl.texts
    q = [quality.quality_signals(t) for t in texts]
    out = {
        "words per page": np.array([s["n_words"] for s in q]),
        "mean word length": np.array([s["mean_word_length"] for s in q]),
        "stop words": np.array([s["stop_words"] for s in q]),
        "top 2-gram share": np.array([s["top_ngram_char_fraction_2"] for s in q]),
        "duplicate 5-gram share": np.array([s["duplicate_ngram_char_fraction_5"] for s in q]),
    }
    sigs = dedup.MinHasher(config.num_perm, config.ngram, config.seed).signatures(texts)
    near = np.zeros(len(texts))
    pairs = np.array(sorted(dedup.LSH(config.bands, config.rows).candidate_pairs(sigs)),
                     dtype=np.int64).reshape(-1, 2)
    for lo in range(0, len(pairs), 50_000):  # in chunks, to bound memory
        chunk = pairs[lo:lo + 50_000]
        similarity = (sigs[chunk[:, 0]] == sigs[chunk[:, 1]]).mean(axis=1)
        np.maximum.at(near, chunk[:, 1], similarity)  # j > i: the later page is the copy
    out["near-duplicate similarity"] = near
    out["share in repeated lines"] = repeated_line_share(texts, config.boilerplate_min_docs)
    out["toxicity (classifier)"] = toxicity_scores(classifier, texts)
    out["blocklist words"] = np.array([len(quality.blocklist_hits(t)) for t in texts])
    return out


def repeated_line_share(texts, min_docs: int = 5) -> np.ndarray:
    """Per page, the share of its characters in lines found on ``min_docs`` or more
    distinct pages (identical pages count once: copies are the deduplicator's job)."""
    unique = list(dict.fromkeys(texts))
    pages_with = Counter(line for t in unique
                         for line in {x.strip() for x in t.splitlines() if x.strip()})
    out = []
    for t in texts:
        lines = [x.strip() for x in t.splitlines() if x.strip()]
        total = sum(len(x) for x in lines)
        shared = sum(len(x) for x in lines if pages_with[x] >= min_docs)
        out.append(shared / total if total else 0.0)
    return np.array(out)


def flagged_by(values: np.ndarray, signal: Signal, threshold: float) -> np.ndarray:
    return values >= threshold if signal.higher_is_bad else values <= threshold


def threshold_view(crawl: Crawl, signals: dict, name: str, threshold: float):
    """Precision and recall across thresholds, the current one marked, plus examples.

    Returns ``(figure, text)`` for a ``widgets.Playground``.
    """
    if name not in SIGNALS:
        raise ValueError(f"unknown signal {name!r}; choose one of {list(SIGNALS)}")
    signal, values = SIGNALS[name], signals[name]
    is_bad = np.array([p.label in signal.targets for p in crawl.pages])
    grid = np.linspace(signal.lo, signal.hi, 61)
    prec, rec = quality.precision_recall_curve(values, is_bad, grid,
                                               higher_is_bad=signal.higher_is_bad)
    flagged = flagged_by(values, signal, threshold)
    p, r = quality.precision_recall(flagged, is_bad)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    new_axes(f"{name}: catching {', '.join(signal.targets)}", "threshold", "share", ax=ax)
    ax.plot(grid, prec, label="precision (flagged pages that are junk)")
    ax.plot(grid, rec, label="recall (junk pages that are flagged)")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    ax.set_ylim(-0.03, 1.03)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    side = ">=" if signal.higher_is_bad else "<="
    lines = [f"{signal.description}. Flag pages with {name} {side} {threshold:g}: "
             f"{int(flagged.sum())} of {len(values)} pages flagged; precision {p:.2f}, "
             f"recall {r:.2f}."]
    closest = np.argsort(np.abs(values - threshold), kind="stable")
    for title, want_flag, want_bad in (("caught", True, True), ("false alarm", True, False),
                                       ("missed", False, True)):
        pick = [i for i in closest if flagged[i] == want_flag and is_bad[i] == want_bad][:1]
        for i in pick:
            page = crawl.pages[i]
            excerpt = " ".join(page.text.split())[:150]
            lines.append(f"[{title}] {page.label}, {name} = {values[i]:.3g}: {excerpt}...")
    return fig, "\n".join(lines)


def funnel_plot(funnel, ax=None):
    """Documents and tokens left after each stage, as shares of the crawl."""
    ax = new_axes("What survives each filtering stage", "", "share of the raw crawl kept", ax=ax)
    names = [s.stage.replace("_", " ") for s in funnel]
    docs = np.array([s.documents for s in funnel], dtype=float) / funnel[0].documents
    toks = np.array([s.tokens for s in funnel], dtype=float) / funnel[0].tokens
    x = np.arange(len(funnel))
    ax.bar(x - 0.2, docs, 0.4, label="documents")
    ax.bar(x + 0.2, toks, 0.4, label="tokens")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.legend()
    return ax


def s_curve_plot(rows: int, bands: int, measured: dict[float, float] | None = None, ax=None):
    """The LSH candidate probability 1 - (1 - s^r)^b, with measured rates if given."""
    ax = new_axes(f"LSH with {bands} bands of {rows} rows",
                  "Jaccard similarity of a pair", "chance the pair is compared", ax=ax)
    s = np.linspace(0, 1, 101)
    ax.plot(s, [dedup.candidate_probability(x, rows, bands) for x in s],
            label="1 - (1 - s^r)^b")
    if measured:
        ax.plot(list(measured), list(measured.values()), "o", label="measured")
    ax.axvline(dedup.lsh_threshold(rows, bands), color="grey", linestyle=":",
               label=f"threshold ~ (1/b)^(1/r) = {dedup.lsh_threshold(rows, bands):.2f}")
    ax.legend(fontsize=8)
    return ax


def measure_s_curve(rows: int, bands: int, similarities, n_pairs: int = 150, n_words: int = 100,
                    seed: int = 0) -> dict[float, float]:
    """How often LSH makes a pair a candidate, for pairs of known Jaccard similarity.

    Each pair is two lists of distinct made-up words that overlap just enough to
    have Jaccard similarity ``s`` (single-word shingles, so the sets are exact).
    """
    rng = np.random.default_rng(seed)
    hasher = dedup.MinHasher(num_perm=rows * bands, ngram=1, seed=seed)
    lsh = dedup.LSH(bands, rows)
    out = {}
    for s in similarities:
        # |A & B| = k, |A | B| = 2n - k, so k = 2ns / (1 + s)
        k = int(round(2 * n_words * s / (1 + s)))
        texts = []
        for _ in range(n_pairs):
            words = [f"w{x}" for x in rng.choice(10**9, size=2 * n_words - k, replace=False)]
            texts += [" ".join(words[:n_words]), " ".join(words[n_words - k:])]
        pairs = lsh.candidate_pairs(hasher.signatures(texts))
        out[float(s)] = sum((2 * i, 2 * i + 1) in pairs for i in range(n_pairs)) / n_pairs
    return out


def signal_controls():
    """A dropdown of ``SIGNALS`` and a threshold slider whose range follows the choice."""
    import ipywidgets as W

    names = list(SIGNALS)
    first = SIGNALS[names[0]]
    choice = W.Dropdown(options=names, value=names[0], description="signal")
    threshold = W.FloatSlider(value=first.default, min=first.lo, max=first.hi, step=first.step,
                              description="threshold", continuous_update=False)

    def follow(change):  # observers run in order: this one before any Playground's
        s = SIGNALS[change["new"]]
        threshold.min = min(s.lo, threshold.min)
        threshold.max = s.hi
        threshold.min = s.lo
        threshold.step = s.step
        threshold.value = s.default

    choice.observe(follow, names="value")
    return choice, threshold


def threshold_playground(crawl: Crawl, signals: dict):
    """The chapter's playground: pick a signal, move its threshold, see the trade."""
    choice, threshold = signal_controls()
    return Playground(lambda signal, threshold: threshold_view(crawl, signals, signal, threshold),
                      {"signal": choice, "threshold": threshold},
                      title="Move a threshold: what does the filter catch, and what does it "
                            "throw away by mistake?")
