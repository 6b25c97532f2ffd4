"""Chapter 05's pictures and playground, driven the way a student drives them."""

import matplotlib
import numpy as np
import pytest

from llmtrain.data import dedup
from llmtrain.data.crawl import messy_crawl
from llmtrain.data.filtering import FilterConfig, FunnelStep, train_toxicity_classifier
from llmtrain.viz import filterviz
from llmtrain.world.fiction import course_world

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def crawl():
    return messy_crawl(course_world(), 300, seed=2)


@pytest.fixture(scope="module")
def signals(crawl):
    classifier = train_toxicity_classifier(n_pages=300, seed=3)
    return filterviz.page_signals(crawl, classifier, FilterConfig(boilerplate_min_docs=3))


def test_every_signal_has_one_value_per_page(crawl, signals):
    assert set(signals) == set(filterviz.SIGNALS)
    for name, values in signals.items():
        assert values.shape == (len(crawl.pages),), name
        assert np.isfinite(values).all(), name
    dups = np.array([p.label == "duplicate" for p in crawl.pages])
    assert (signals["near-duplicate similarity"][dups] > 0.9).mean() > 0.9
    assert signals["near-duplicate similarity"][~dups].mean() < 0.5


def test_threshold_view_reports_the_measured_precision_and_recall(crawl, signals):
    fig, text = filterviz.threshold_view(crawl, signals, "stop words", 1)
    flagged = signals["stop words"] <= 1
    bad = np.array([p.label in ("gibberish", "spam") for p in crawl.pages])
    precision = (flagged & bad).sum() / flagged.sum()
    assert f"precision {precision:.2f}" in text
    assert fig.axes and fig.axes[0].get_xlabel() == "threshold"
    with pytest.raises(ValueError, match="unknown signal"):
        filterviz.threshold_view(crawl, signals, "vibes", 0.5)


def test_playground_slider_follows_the_chosen_signal(crawl, signals):
    panel = filterviz.threshold_playground(crawl, signals)
    choice, threshold = panel.controls["signal"], panel.controls["threshold"]
    choice.value = "toxicity (classifier)"
    spec = filterviz.SIGNALS["toxicity (classifier)"]
    assert (threshold.min, threshold.max, threshold.value) == (spec.lo, spec.hi, spec.default)
    assert panel.last_values == {"signal": "toxicity (classifier)", "threshold": spec.default}
    threshold.value = 0.99
    assert "Flag pages with toxicity (classifier) >= 0.99" in panel.last_text
    assert panel.error is None


def test_s_curve_measurement_matches_the_formula():
    measured = filterviz.measure_s_curve(4, 32, [0.2, 0.5, 0.8], n_pairs=120)
    for s, rate in measured.items():
        assert rate == pytest.approx(dedup.candidate_probability(s, 4, 32), abs=0.12)


def test_funnel_plot_draws_both_bars():
    steps = [FunnelStep("crawl", 100, 5000, 0, 0), FunnelStep("exact_dedup", 80, 4200, 20, 0),
             FunnelStep("pii", 80, 4100, 0, 7)]
    ax = filterviz.funnel_plot(steps)
    assert len(ax.patches) == 2 * len(steps)
    assert [round(p.get_height(), 3) for p in ax.patches[:3]] == [1.0, 0.8, 0.8]
    assert ax.get_ylabel() == "share of the raw crawl kept"
