"""The filtering pipeline: each stage does its job, the funnel adds up, filters score honestly."""

import pytest

from llmtrain.course.shared_data import course_tokenizer
from llmtrain.data import filtering as F
from llmtrain.data import quality
from llmtrain.data.crawl import messy_crawl, mojibake
from llmtrain.world.fiction import course_world


@pytest.fixture(scope="module")
def crawl():
    return messy_crawl(course_world(), 500, seed=5)


@pytest.fixture(scope="module")
def classifier():
    return F.train_toxicity_classifier(n_pages=600, seed=1)


@pytest.fixture(scope="module")
def filtered(crawl, classifier):
    config = F.FilterConfig(boilerplate_min_docs=3)  # a small crawl repeats lines less often
    return F.run_pipeline(crawl, config, classifier=classifier, tokenizer=course_tokenizer())


def test_fix_mojibake_repairs_and_leaves_good_text_alone():
    good = "The caf\u00e9 in Z\u00fcrich doesn\u2019t open before nine \u2013 sadly."
    assert F.fix_mojibake(mojibake(good)) == good
    assert F.fix_mojibake(good) == good
    assert F.mojibake_score(good) == 0 and F.mojibake_score(mojibake(good)) > 0


def test_looks_like_code():
    code = "import os\n\ndef f(x):\n    y = x + 1\n    return y\n"
    assert F.looks_like_code(code)
    assert not F.looks_like_code("Python is a language. It has functions and classes.\n" * 3)
    assert not F.looks_like_code("")


def test_funnel_only_shrinks_and_counts_tokens(filtered, crawl):
    docs = [s.documents for s in filtered.funnel]
    tokens = [s.tokens for s in filtered.funnel]
    assert [s.stage for s in filtered.funnel] == ["crawl", *F.STAGES]
    assert docs[0] == len(crawl.pages) and docs[-1] == len(filtered.pages)
    assert all(a >= b for a, b in zip(docs, docs[1:]))
    assert all(a >= b for a, b in zip(tokens, tokens[1:]))
    for a, b in zip(filtered.funnel, filtered.funnel[1:]):
        assert a.documents - b.documents == b.dropped
    assert len(filtered.removed_by) == len(crawl.pages) - len(filtered.pages)


def test_pipeline_removes_junk_and_keeps_good_pages(filtered, crawl):
    assert filtered.kept_share("duplicate", crawl) == 0
    assert filtered.kept_share("near_duplicate", crawl) < 0.3
    for label in ("spam", "gibberish", "toxic"):
        assert filtered.kept_share(label, crawl) < 0.2, label
    assert filtered.kept_share("clean", crawl) > 0.6
    # what no heuristic can see: well-written false statements
    assert filtered.kept_share("false", crawl) > 0.8


def test_survivors_are_repaired(filtered):
    for p in filtered.pages:
        assert not quality.find_pii(p.text), p.text
        assert F.mojibake_score(p.text) == 0, p.text
    boilerplate = [p for p in filtered.pages if p.label == "boilerplate"]
    assert boilerplate
    left = sum(line in p.text for p in boilerplate for line in p.inserted)
    total = sum(len(p.inserted) for p in boilerplate)
    assert left / total < 0.2


def test_stages_can_be_switched_off(crawl):
    only = F.run_pipeline(crawl, F.FilterConfig(stages=("exact_dedup",)))
    assert [s.stage for s in only.funnel] == ["crawl", "exact_dedup"]
    assert set(only.removed_by.values()) == {"exact_dedup"}


def test_exact_dedup_scores_perfectly_and_classifier_beats_blocklist(crawl, classifier):
    exact = F.score_alone(crawl, "exact_dedup")
    assert exact.recall == 1.0 and exact.precision > 0.95
    learned = F.score_alone(crawl, "toxicity", classifier=classifier)
    listed = F.score_alone(crawl, "blocklist")
    assert learned.recall > listed.recall
    assert learned.precision > 0.8


def test_gopher_rules_would_drop_code_unless_it_is_routed_around(crawl):
    code = [p.text for p in crawl.pages if p.source == "code"]
    rules = F.COURSE_RULES
    assert sum(bool(rules.check(t)) for t in code) > 0.25 * len(code)


@pytest.mark.parametrize("kwargs, match", [
    (dict(stages=("dedup",)), "unknown stage"),
    (dict(near_threshold=0.0), "near_threshold"),
    (dict(toxicity_threshold=2.0), "toxicity_threshold"),
    (dict(boilerplate_min_docs=1), "boilerplate_min_docs"),
])
def test_bad_config_says_what_to_change(kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.FilterConfig(**kwargs)


def test_unknown_filter_name(crawl):
    with pytest.raises(ValueError, match="unknown filter"):
        F.flags_alone(crawl, "magic")
