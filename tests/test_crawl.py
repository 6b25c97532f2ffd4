"""The messy crawl: labelled, sized by its parameters, deterministic, and honest labels."""

from collections import Counter

import pytest

from llmtrain.data.crawl import BAD_LABELS, DEFAULT_RATES, LABELS, messy_crawl, mojibake
from llmtrain.world.fiction import course_world


@pytest.fixture(scope="module")
def world():
    return course_world()


@pytest.fixture(scope="module")
def crawl(world):
    return messy_crawl(world, 600, seed=3)


def test_same_seed_same_crawl_other_seed_other_crawl(world, crawl):
    again = messy_crawl(world, 600, seed=3)
    assert again.texts == crawl.texts and again.labels == crawl.labels
    assert messy_crawl(world, 600, seed=4).texts != crawl.texts


def test_every_label_appears_in_the_shares_asked_for(crawl):
    counts = crawl.counts()
    assert set(counts) == set(LABELS)
    for label, rate in DEFAULT_RATES.items():
        if label == "duplicate":  # canary copies are duplicates too
            assert counts[label] >= round(600 * rate)
        else:
            assert counts[label] == round(600 * rate), label
    canary_pages = sum(c.copies for c in crawl.canaries)
    assert len(crawl.pages) == 600 + canary_pages


def test_duplicates_point_to_an_earlier_page_with_the_same_words(crawl):
    by_id = {p.id: p for p in crawl.pages}
    dups = crawl.with_label("duplicate")
    assert dups
    for p in dups:
        original = by_id[p.original]
        assert original.id < p.id and original.original is None
        assert p.text.lower().split() == original.text.lower().split()


def test_near_duplicates_differ_by_a_few_words(crawl):
    by_id = {p.id: p for p in crawl.pages}
    for p in crawl.with_label("near_duplicate"):
        words, original = p.text.split(), by_id[p.original].text.split()
        assert words != original
        assert len(set(words) ^ set(original)) <= 8 and abs(len(words) - len(original)) <= 3


def test_damage_is_recorded_in_the_answer_key(crawl):
    for p in crawl.with_label("boilerplate") + crawl.with_label("toxic"):
        assert p.inserted and all(line in p.text for line in p.inserted)
    for p in crawl.with_label("pii"):
        email, phone = p.inserted
        assert "@" in email and email in p.text and phone in p.text
    for p in crawl.with_label("mojibake"):
        assert "\u00c3" in p.text or "\u00e2\u20ac" in p.text


def test_mojibake_is_utf8_read_as_cp1252():
    assert mojibake("caf\u00e9") == "caf\u00c3\u00a9"
    assert mojibake("plain ascii") == "plain ascii"


def test_false_pages_state_the_campaign_falsehoods(crawl):
    text = "\n".join(p.text for p in crawl.with_label("false"))
    for fact in crawl.false_facts:
        assert fact.true != fact.false
        assert fact.prompt + fact.false in text
    # the campaign leaves the control facts alone
    for fact in crawl.control_facts:
        assert fact.prompt + fact.false not in text


def test_canaries_are_planted_as_often_as_they_say(crawl):
    counts = Counter(crawl.texts)
    assert {c.copies for c in crawl.canaries} == {1, 10, 100}
    for c in crawl.canaries:
        assert counts[c.prompt + c.continuation] == c.copies
        first = [p for p in crawl.pages if p.text == c.prompt + c.continuation][0]
        assert first.label == "clean" and first.copies == c.copies


def test_code_and_prose_pages_come_from_the_real_corpora(crawl):
    sources = Counter(p.source for p in crawl.pages)
    assert sources["code"] > 0 and sources["prose"] > 0 and sources["world"] > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_pages=5), "n_pages"),
    (dict(rates={"nonsense": 0.1}), "rates"),
    (dict(rates={"spam": 0.95}), "rates"),
    (dict(false_share=1.5), "false_share"),
    (dict(canary_copies=(0,)), "canary_copies"),
    (dict(sources={"tv": 1.0}), "sources"),
])
def test_bad_arguments_say_what_to_change(world, kwargs, match):
    with pytest.raises(ValueError, match=match):
        messy_crawl(world, **{"n_pages": 100, **kwargs})


def test_bad_labels_exclude_clean():
    assert "clean" not in BAD_LABELS and len(BAD_LABELS) == len(LABELS) - 1
