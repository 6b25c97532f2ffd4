"""Quality filters: every Gopher rule at its boundary, PII, blocklist, classifier, precision."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import zlib

import numpy as np
import pytest

from llmtrain.data.quality import (
    BLOCKLIST,
    GopherRules,
    HashedNgramClassifier,
    blocklist_hits,
    find_pii,
    mask_pii,
    precision_recall,
    precision_recall_curve,
    quality_signals,
    rule_names,
    word_ngrams,
)

RULES = GopherRules()

# --- hand-built texts ------------------------------------------------------------------
# Words made of consonants only: never a stop word, never an English word, and each one
# new, so no n-gram repeats unless a test repeats it on purpose.
_CONSONANTS = "bcdfghjklmnpqrstvwxz"
_counters: dict[int, itertools.count] = {}


def fresh(length: int = 4) -> str:
    """A word of ``length`` consonants that no other call returns."""
    k = next(_counters.setdefault(length, itertools.count()))
    assert k < len(_CONSONANTS) ** length, "ran out of fresh words"
    letters = []
    for _ in range(length):
        k, r = divmod(k, len(_CONSONANTS))
        letters.append(_CONSONANTS[r])
    return "".join(letters)


def fresh_words(count: int, length: int = 4) -> list[str]:
    return [fresh(length) for _ in range(count)]


def doc_words(n_words: int) -> list[str]:
    """Two stop words of 4 letters and fresh 4-letter words: mean word length exactly 4."""
    return ["that", "have", *fresh_words(n_words - 2)]


def doc(n_words: int) -> str:
    return " ".join(doc_words(n_words))


def doc_with_repeats(block_len: int, copies: int, n_words: int) -> str:
    """``copies`` copies of one ``block_len``-word block, each after a fresh word."""
    block = fresh_words(block_len)
    words = ["that", "have"]
    for _ in range(copies):
        words += [fresh(), *block]
    words += fresh_words(n_words - len(words))
    assert len(words) == n_words
    return " ".join(words)


PARAGRAPH = (
    "Bread is one of the oldest prepared foods. Early bakers mixed ground grain with water "
    "and left the dough near a fire, where it rose slowly because wild yeast from the air "
    "settled in it. Over many centuries people learned to keep a little of each batch to "
    "start the next one, and that habit spread with trade from town to town. Today a baker "
    "can buy dried yeast in a packet, yet many still prefer a starter that has been fed "
    "with flour and water for years. The flavour is sour, deep and hard to copy.")


# --- signals ---------------------------------------------------------------------------
def test_signals_of_a_small_hand_counted_text():
    text = "Hello world...\n* the cat\n* the cat\n# 42"
    s = quality_signals(text)
    # words: Hello world... * the cat * the cat # 42 -> lengths 5 8 1 3 3 1 3 3 1 2 = 30
    assert s["n_words"] == 10
    assert s["mean_word_length"] == pytest.approx(3.0)
    assert s["symbol_to_word_ratio"] == pytest.approx(2 / 10)  # one "#", one "..."
    assert s["bullet_line_fraction"] == pytest.approx(2 / 4)
    assert s["ellipsis_line_fraction"] == pytest.approx(1 / 4)
    assert s["alpha_word_fraction"] == pytest.approx(6 / 10)
    assert s["stop_words"] == 1  # "the", however often it appears
    assert s["duplicate_line_fraction"] == pytest.approx(1 / 4)
    assert s["duplicate_line_char_fraction"] == pytest.approx(9 / 36)
    assert s["top_ngram_char_fraction_2"] == pytest.approx(8 / 30)  # "* the" twice
    assert s["top_ngram_char_fraction_3"] == pytest.approx(14 / 30)  # "* the cat" twice
    assert s["top_ngram_char_fraction_4"] == 0.0  # no 4-gram repeats
    assert all(s[f"duplicate_ngram_char_fraction_{n}"] == 0.0 for n in range(5, 11))


def test_overlapping_repeats_count_each_word_once():
    words = ["ab"] * 12  # every n-gram is the same one, overlapping itself
    s = quality_signals(" ".join(words))
    assert s["top_ngram_char_fraction_2"] == pytest.approx(1.0)
    assert s["duplicate_ngram_char_fraction_10"] == pytest.approx(1.0)


def test_empty_text_has_zero_signals_and_is_dropped():
    assert set(quality_signals("").values()) == {0.0}
    assert {"min_words", "mean_word_length", "alpha_words", "stop_words"} <= set(RULES.check(""))


def test_rule_names_and_defaults_are_the_gopher_ones():
    assert rule_names() == (
        "min_words", "max_words", "mean_word_length", "symbol_ratio", "bullet_lines",
        "ellipsis_lines", "alpha_words", "stop_words", "duplicate_lines", "duplicate_line_chars",
        "top_2gram", "top_3gram", "top_4gram", "duplicate_5gram", "duplicate_6gram",
        "duplicate_7gram", "duplicate_8gram", "duplicate_9gram", "duplicate_10gram")
    assert dataclasses.asdict(RULES) == {
        "min_words": 50, "max_words": 100_000, "min_mean_word_length": 3.0,
        "max_mean_word_length": 10.0, "max_symbol_ratio": 0.1, "max_bullet_lines": 0.9,
        "max_ellipsis_lines": 0.3, "min_alpha_words": 0.8, "min_stop_words": 2,
        "max_duplicate_lines": 0.3, "max_duplicate_line_chars": 0.2, "max_top_2gram": 0.20,
        "max_top_3gram": 0.18, "max_top_4gram": 0.16, "max_duplicate_5gram": 0.15,
        "max_duplicate_6gram": 0.14, "max_duplicate_7gram": 0.13, "max_duplicate_8gram": 0.12,
        "max_duplicate_9gram": 0.11, "max_duplicate_10gram": 0.10}


# --- every rule just inside (kept: thresholds are inclusive) and just outside ----------
def test_min_words_boundary():
    assert RULES.check(doc(50)) == []  # exactly 50 words: kept
    assert RULES.check(doc(49)) == ["min_words"]


def test_max_words_boundary():
    page = "that have " + "word " * 99_998  # exactly 100,000 words
    assert RULES.check_quality(page) == []
    assert RULES.check_quality(page + "word") == ["max_words"]
    small = dataclasses.replace(RULES, max_words=60)
    assert small.check(doc(60)) == []
    assert small.check(doc(61)) == ["max_words"]


def test_mean_word_length_lower_boundary():
    words = ["the", "and", *fresh_words(48, 3)]  # 150 characters / 50 words = 3.0
    assert RULES.check(" ".join(words)) == []
    words[-1] = fresh(2)  # 149 / 50 = 2.98
    assert RULES.check(" ".join(words)) == ["mean_word_length"]


def test_mean_word_length_upper_boundary():
    words = ["that", "have", *fresh_words(12, 11), *fresh_words(36, 10)]  # 500 / 50 = 10.0
    assert quality_signals(" ".join(words))["mean_word_length"] == 10.0
    assert RULES.check(" ".join(words)) == []
    words[-1] = fresh(11)  # 501 / 50 = 10.02
    assert RULES.check(" ".join(words)) == ["mean_word_length"]


@pytest.mark.parametrize("n_symbols, expected", [(10, []), (11, ["symbol_ratio"])])
def test_symbol_ratio_boundary(n_symbols, expected):
    words = doc_words(100)
    for i in range(n_symbols):  # "#", "..." and "…" each count once, mid-line
        words[3 + 5 * i] += ("#", "...", "…")[i % 3]
    assert RULES.check(" ".join(words)) == expected  # 10 / 100 = 0.1 kept, 0.11 dropped


@pytest.mark.parametrize("n_bullets, expected", [(18, []), (19, ["bullet_lines"])])
def test_bullet_lines_boundary(n_bullets, expected):
    lines = [" ".join(doc_words(5))] + [" ".join(fresh_words(5)) for _ in range(19)]
    for i in range(1, n_bullets + 1):  # all four bullet characters count
        lines[i] = "•-*·"[i % 4] + " " + lines[i]
    assert RULES.check("\n".join(lines)) == expected  # 18 / 20 = 0.9 kept, 0.95 dropped


@pytest.mark.parametrize("n_trailing, expected", [(3, []), (4, ["ellipsis_lines"])])
def test_ellipsis_lines_boundary(n_trailing, expected):
    lines = [" ".join(doc_words(5))] + [" ".join(fresh_words(5)) for _ in range(9)]
    for i in range(n_trailing):
        lines[1 + i] += ("...", "…")[i % 2]
    assert RULES.check("\n".join(lines)) == expected  # 3 / 10 = 0.3 kept, 0.4 dropped


@pytest.mark.parametrize("n_numbers, expected", [(10, []), (11, ["alpha_words"])])
def test_alpha_words_boundary(n_numbers, expected):
    words = doc_words(50)
    for i in range(n_numbers):
        words[2 + 4 * i] = str(1000 + i)  # a word with no letter
    assert RULES.check(" ".join(words)) == expected  # 40 / 50 = 0.8 kept, 39 / 50 dropped


def test_stop_words_boundary():
    two = "The " + " ".join(fresh_words(48)) + " and,"  # case and punctuation are ignored
    assert quality_signals(two)["stop_words"] == 2
    assert RULES.check(two) == []
    one = "the " + " ".join(fresh_words(48)) + " the"  # one stop word, twice
    assert RULES.check(one) == ["stop_words"]


def _lines_with_repeated_short_lines(extra_pair: bool) -> str:
    """8 six-word lines and pairs of one-word lines: many duplicate lines, few characters."""
    u = [" ".join(doc_words(6))] + [" ".join(fresh_words(6)) for _ in range(7)]
    d = fresh_words(7, 3)
    first = [u[0], d[0], d[1], u[1], d[2], d[3], u[2], d[4], d[5], u[3]]
    second = [u[4], d[1], d[0], u[5], d[3], d[2], u[6], d[5], d[4], u[7]]
    if extra_pair:
        first, second = first + [d[6]], second + [d[6]]
    return "\n".join(first + second)


def test_duplicate_lines_boundary():
    kept = _lines_with_repeated_short_lines(extra_pair=False)  # 6 repeats / 20 lines = 0.3
    assert quality_signals(kept)["duplicate_line_fraction"] == 0.3
    assert RULES.check(kept) == []
    dropped = _lines_with_repeated_short_lines(extra_pair=True)  # 7 / 22 = 0.318
    assert RULES.check(dropped) == ["duplicate_lines"]


@pytest.mark.parametrize("longer, expected", [(False, []), (True, ["duplicate_line_chars"])])
def test_duplicate_line_chars_boundary(longer, expected):
    # 20 lines of 23 characters; four lines appear twice: 4 * 23 / 460 = 0.2 exactly.
    # With the repeated lines one character longer: 4 * 24 / 468 = 0.205.
    u = ["that have " + " ".join(fresh_words(2, 6))] + [" ".join(fresh_words(4, 5))
                                                       for _ in range(11)]
    d = [" ".join(fresh_words(3, 5) + [fresh(6 if longer else 5)]) for _ in range(4)]
    lines = [u[0], d[0], u[1], d[1], u[2], d[2], u[3], d[3], u[4], u[5],
             d[0], u[6], d[1], u[7], d[2], u[8], d[3], u[9], u[10], u[11]]
    text = "\n".join(lines)
    assert quality_signals(text)["duplicate_line_fraction"] == 0.2  # that rule passes
    assert RULES.check(text) == expected


# (n, copies of an n-word block, words in the text) so that copies * n / words == threshold
TOP_CASES = [(2, 10, 100), (3, 6, 100), (4, 4, 100)]
DUPLICATE_CASES = [(5, 3, 100), (6, 7, 300), (7, 13, 700), (8, 3, 200), (9, 11, 900),
                   (10, 2, 200)]


@pytest.mark.parametrize("kind, signal, n, copies, n_words",
                         [("top", "top_ngram_char_fraction", *c) for c in TOP_CASES]
                         + [("duplicate", "duplicate_ngram_char_fraction", *c)
                            for c in DUPLICATE_CASES])
def test_ngram_boundary(kind, signal, n, copies, n_words):
    threshold = getattr(RULES, f"max_{kind}_{n}gram")
    at = doc_with_repeats(n, copies, n_words)
    assert quality_signals(at)[f"{signal}_{n}"] == threshold
    assert RULES.check(at) == []
    above = doc_with_repeats(n, copies, n_words - 1)  # one word fewer: just above
    assert RULES.check(above) == [f"{kind}_{n}gram"]


# --- whole documents -------------------------------------------------------------------
def test_a_normal_paragraph_passes_every_rule():
    assert RULES.check(PARAGRAPH) == []
    assert RULES.keep(PARAGRAPH)


def test_keyword_stuffing_fails_the_top_ngram_rules():
    rng = random.Random(0)
    filler = ["best", "deal", "today", "online", "free", "shipping", "with", "the", "price"]
    spam = " ".join(f"buy cheap watches {rng.choice(filler)}" for _ in range(30))
    failed = RULES.check(spam)
    assert {"top_2gram", "top_3gram"} <= set(failed)
    assert failed == RULES.check_quality(spam) + RULES.check_repetition(spam)


def test_random_consonant_strings_fail_stop_words_and_word_length():
    rng = random.Random(0)
    page = " ".join("".join(rng.choice(_CONSONANTS) for _ in range(rng.randint(9, 16)))
                    for _ in range(200))
    assert {"stop_words", "mean_word_length"} <= set(RULES.check(page))


def test_rules_can_be_changed_or_switched_off():
    short = doc(20)
    assert RULES.check(short) == ["min_words"]
    assert dataclasses.replace(RULES, min_words=20).check(short) == []
    assert GopherRules(min_words=None).check(short) == []
    signals = quality_signals(short)
    assert RULES.failures(signals) == RULES.check(short)  # sweep thresholds without re-measuring
    with pytest.raises(dataclasses.FrozenInstanceError):
        RULES.min_words = 10


@pytest.mark.parametrize("bad", [{"max_symbol_ratio": -0.1}, {"min_words": "50"},
                                 {"min_stop_words": True}, {"min_words": 10, "max_words": 5},
                                 {"min_mean_word_length": 11.0}, {"max_top_2gram": math.nan}])
def test_bad_thresholds_are_refused(bad):
    with pytest.raises(ValueError):
        GopherRules(**bad)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="str"):
        RULES.check(None)
    with pytest.raises(ValueError, match="quality_signals"):
        RULES.failures({"n_words": 50.0})


# --- PII -------------------------------------------------------------------------------
@pytest.mark.parametrize("phone", ["+44 20 7946 0958", "(555) 123-4567", "555-123-4567",
                                   "555.123.4567", "+1 (555) 123-4567", "+4915112345678"])
def test_each_phone_format_is_found_and_masked(phone):
    text = f"Call {phone} before noon."
    assert find_pii(text) == [(5, 5 + len(phone), "PHONE")]
    assert mask_pii(text) == "Call <PHONE> before noon."


def test_emails_are_found_without_trailing_punctuation():
    text = "Write to jane.doe+news@mail.example.co.uk. Or ask bob_42@inbox.test!"
    spans = find_pii(text)
    assert [text[a:b] for a, b, _ in spans] == ["jane.doe+news@mail.example.co.uk",
                                                "bob_42@inbox.test"]
    assert {kind for _, _, kind in spans} == {"EMAIL"}
    assert mask_pii(text) == "Write to <EMAIL>. Or ask <EMAIL>!"


def test_numbers_in_prose_are_not_pii():
    text = ("She was born in 1987, on 12 March 1987 (1987-03-12 or 12.03.1987), and used "
            "Python 3.11.2 and version 10.0.19045. The hall seats 1,250 people; pi is 3.14159; "
            "the router is 192.168.1.1; ISBN 978-3-16-148410-0; 3+4=7 and 2 + 2 = 4; "
            "scores 100-120 and 250.5; the code is +000000120.")
    assert find_pii(text) == []
    assert mask_pii(text) == text


def test_masking_is_idempotent_and_keeps_other_kinds_on_request():
    text = ("Contact Ana Lind at ana.lind@example.com or +44 20 7946 0958; the office is on "
            "(555) 123-4567 since 2019.")
    once = mask_pii(text)
    assert once == "Contact Ana Lind at <EMAIL> or <PHONE>; the office is on <PHONE> since 2019."
    assert mask_pii(once) == once
    only_mail = mask_pii(text, {"EMAIL": "[email]"})
    assert "[email]" in only_mail and "+44 20 7946 0958" in only_mail
    with pytest.raises(ValueError, match="unknown PII kinds"):
        mask_pii(text, {"ADDRESS": "<ADDRESS>"})


# --- blocklist -------------------------------------------------------------------------
def test_blocklist_matches_whole_words_in_any_case():
    text = "You IDIOT, you moron! Idiots and idiotic remarks slip through; grobnak, snivlet."
    assert blocklist_hits(text) == ["idiot", "moron", "grobnak", "snivlet"]
    assert blocklist_hits(PARAGRAPH) == []
    assert blocklist_hits("what a clown", blocklist={"Clown"}) == ["clown"]
    assert {"idiot", "moron", "stupid", "loser", "pathetic", "worthless", "grobnak",
            "snivlet"} <= BLOCKLIST


# --- the classifier --------------------------------------------------------------------
TRAIN_INSULTS = ["idiot", "moron", "loser", "clown", "fool", "nitwit", "buffoon", "grobnak"]
TEST_INSULTS = ["dimwit", "numbskull", "halfwit", "dunce"]  # never seen in training
TRAIN_ADJ = ["stupid", "clueless", "useless", "pathetic", "brainless"]
TEST_ADJ = ["clueless", "useless", "brainless"]  # none of these is on the blocklist
TOXIC = ["you are such a {adj} {x}", "shut up you {adj} {x}", "nobody cares what a {x} thinks",
         "get lost {x} and take your {adj} ideas with you", "only a {adj} {x} would write this"]
NEUTRAL = ["the {n} near the {p} opens at nine", "we walked to the {p} to see the {n}",
           "thanks for the tip about the {n} in the {p}", "my friend liked the {n} by the {p}",
           "is the {n} by the {p} still worth a visit"]
NOUNS = ["museum", "bakery", "garden", "bridge", "market", "library", "harbour", "castle"]
PLACES = ["river", "station", "square", "park", "old town", "beach", "hill", "school"]


def comments(n: int, insults: list[str], adjectives: list[str], seed: int):
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        if i % 2:
            texts.append(rng.choice(TOXIC).format(adj=rng.choice(adjectives),
                                                  x=rng.choice(insults)))
        else:
            texts.append(rng.choice(NEUTRAL).format(n=rng.choice(NOUNS), p=rng.choice(PLACES)))
        labels.append(i % 2)
    return texts, np.array(labels)


@pytest.fixture(scope="module")
def trained():
    texts, labels = comments(600, TRAIN_INSULTS, TRAIN_ADJ, seed=0)
    return HashedNgramClassifier().fit(texts, labels), texts, labels


def test_features_are_stable_hashed_word_ngrams():
    assert word_ngrams("You are a clown.", (1, 2)) == ["you", "are", "a", "clown", "you are",
                                                       "are a", "a clown"]
    clf = HashedNgramClassifier()
    assert clf.feature_id("hello") == zlib.crc32(b"hello") % 2**16 == 42630
    assert clf.features("Hello hello") == [42630, 42630, clf.feature_id("hello hello")]


def test_classifier_separates_toxic_comments_beyond_the_blocklist(trained):
    clf, texts, _ = trained
    assert clf.losses[0] == pytest.approx(math.log(2))  # zero weights: p = 0.5 for every text
    assert clf.losses[-1] < 0.05
    test_texts, test_labels = comments(200, TEST_INSULTS, TEST_ADJ, seed=1)
    assert not any(blocklist_hits(t) for t in test_texts)  # the blocklist catches none
    probs = clf.predict_proba(test_texts)
    assert probs.shape == (200,) and probs.dtype == np.float64
    assert ((probs >= 0) & (probs <= 1)).all()
    assert (clf.predict(test_texts) == test_labels).mean() > 0.9
    assert (probs[test_labels == 1] >= 0.5).mean() > 0.9  # toxic ones with unseen words
    toxic_grams = {g for t, y in zip(texts, trained[2]) if y for g in word_ngrams(t)}
    neutral_grams = {g for t, y in zip(texts, trained[2]) if not y for g in word_ngrams(t)}
    for gram, weight in clf.top_features(5, texts):
        assert gram in toxic_grams and gram not in neutral_grams and weight > 0
    assert all(w < 0 for _, w in clf.top_features(5, texts, label=0))


def test_classifier_is_deterministic_for_a_seed():
    texts, labels = comments(200, TRAIN_INSULTS, TRAIN_ADJ, seed=2)
    probe = comments(20, TEST_INSULTS, TEST_ADJ, seed=3)[0]

    def fitted(seed):
        clf = HashedNgramClassifier(n_features=2**12, ngrams=(1, 2, 3), seed=seed)
        return clf.fit(texts, labels, epochs=5, lr=0.1, batch_size=16).predict_proba(probe)

    assert np.array_equal(fitted(0), fitted(0))
    assert not np.array_equal(fitted(0), fitted(1))  # the seed orders the minibatches


def test_predict_applies_the_threshold(trained):
    clf, texts, _ = trained
    probs = clf.predict_proba(texts[:10])
    assert clf.predict(texts[:10]).tolist() == (probs >= 0.5).astype(int).tolist()
    assert clf.predict(texts[:10], threshold=0.0).tolist() == [1] * 10
    assert clf.predict_proba([]).shape == (0,)


def test_classifier_errors_say_what_to_fix():
    clf = HashedNgramClassifier()
    with pytest.raises(RuntimeError, match="fit"):
        clf.predict_proba(["hello"])
    with pytest.raises(ValueError, match="at least one"):
        clf.fit([], [])
    with pytest.raises(ValueError, match="0 or 1"):
        clf.fit(["a", "b"], [0, 2])
    with pytest.raises(ValueError, match="0 or 1"):
        clf.fit(["a", "b"], [0, 0.5])
    with pytest.raises(ValueError, match="one label per text"):
        clf.fit(["a", "b", "c"], [0, 1])
    with pytest.raises(ValueError, match="only one class"):
        clf.fit(["a", "b"], [1, 1])
    with pytest.raises(ValueError, match="single string"):
        clf.fit("a text", [1])
    with pytest.raises(ValueError, match="str"):
        clf.fit(["a", 3], [0, 1])
    with pytest.raises(ValueError, match="epochs"):
        clf.fit(["a", "b"], [0, 1], epochs=0)
    with pytest.raises(ValueError, match="n_features"):
        HashedNgramClassifier(n_features=0)
    with pytest.raises(ValueError, match="ngrams"):
        HashedNgramClassifier(ngrams=(0, 1))


# --- precision and recall --------------------------------------------------------------
def test_precision_recall_by_hand():
    flagged = [True, True, False, False, True]
    is_bad = [True, False, True, False, True]
    assert precision_recall(flagged, is_bad) == pytest.approx((2 / 3, 2 / 3))
    assert precision_recall([1, 0, 0], [1, 1, 0]) == (1.0, 0.5)


def test_precision_recall_conventions():
    assert precision_recall([False, False], [True, False]) == (1.0, 0.0)  # nothing flagged
    assert precision_recall([True, False], [False, False]) == (0.0, 1.0)  # nothing bad
    assert precision_recall([False, False], [False, False]) == (1.0, 1.0)
    assert precision_recall([], []) == (1.0, 1.0)
    with pytest.raises(ValueError, match="one of each"):
        precision_recall([True], [True, False])
    with pytest.raises(ValueError, match="booleans"):
        precision_recall([2, 0], [1, 0])


def test_precision_recall_curve_by_hand():
    scores, is_bad = [0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0]
    precisions, recalls = precision_recall_curve(scores, is_bad, [1.0, 0.85, 0.8, 0.2, 0.0])
    assert precisions == pytest.approx([1.0, 1.0, 0.5, 2 / 3, 0.5])  # 0.8 >= 0.8 is flagged
    assert recalls == pytest.approx([0.0, 0.5, 0.5, 1.0, 1.0])
    # A quality score: low is bad, flagged when score <= threshold.
    quality, bad = [0.1, 0.2, 0.7, 0.9], [1, 1, 0, 1]
    precisions, recalls = precision_recall_curve(quality, bad, [0.2, 0.9], higher_is_bad=False)
    assert precisions == pytest.approx([1.0, 0.75])
    assert recalls == pytest.approx([2 / 3, 1.0])
    with pytest.raises(ValueError, match="thresholds"):
        precision_recall_curve(scores, is_bad, [])
