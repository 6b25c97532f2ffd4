"""Chapter 15's library: the small world, corpus measurements, the generational loop."""

from __future__ import annotations

import random

import matplotlib.pyplot as plt
import pytest
import torch

from llmtrain.data.collapse import (
    ATTRIBUTES,
    CollapseConfig,
    CollapseLab,
    CorpusStats,
    Generation,
    WordTokenizer,
    biography,
    gaussian_refit,
    words,
    zipf_mentions,
)
from llmtrain.viz import collapseviz
from llmtrain.world.fiction import BIO_TEMPLATES, person_values

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = CollapseConfig(steps=20, batch_size=8, block_size=64, word_budget=200)


@pytest.fixture(scope="module")
def lab():
    return CollapseLab(seed=0, n_people=12, top_mentions=6)


# --- text ----------------------------------------------------------------------------------
def test_words_and_the_word_tokenizer_round_trip(lab):
    assert words("Ana Ro's hometown is Orvik, in Orvia.") == [
        "Ana", "Ro", "'s", "hometown", "is", "Orvik", ",", "in", "Orvia", "."]
    tok = lab.tokenizer
    for text in lab.real + lab.heldout:
        assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == len(tok.words) + 1 and tok.eot_id == len(tok.words)
    stream = tok.stream(lab.real[:2]).tolist()
    assert stream[0] == tok.eot_id and stream[-1] == tok.eot_id
    assert stream.count(tok.eot_id) == 3
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("Ana Ro studied at Zzyzx.")
    with pytest.raises(ValueError, match="no words"):
        WordTokenizer([""])


def test_zipf_mentions_by_hand(lab):
    counts = list(zipf_mentions(lab.people, top=20, exponent=1.0).values())
    assert counts == [20, 10, 7, 5, 4, 3, 3, 2, 2, 2, 2, 2][: len(counts)]
    assert list(zipf_mentions(lab.people, top=3, exponent=0.0).values()) == [3] * len(lab.people)
    assert min(zipf_mentions(lab.people, top=2, exponent=3.0).values()) == 1
    with pytest.raises(ValueError, match="top >= 1"):
        zipf_mentions(lab.people, top=0)


def test_the_real_corpus_has_a_long_tail(lab):
    mentions = {p.name: sum(p.name in d for d in lab.real) for p in lab.people}
    assert mentions == lab.mentions
    assert lab.rare == {n for n, k in mentions.items() if k == 1} and len(lab.rare) >= 4
    assert len(lab.real) == sum(lab.mentions.values()) == len(lab.heldout)
    assert lab.real != lab.heldout  # same facts, other phrasings


def test_a_biography_states_four_true_facts():
    lab = CollapseLab(seed=1, n_people=6)
    p = lab.people[0]
    text = biography(p, random.Random(0))
    sentences = text.split(". ")
    assert len(sentences) == 4
    true = {t.format(**person_values(p)).rstrip(".") for a in ATTRIBUTES for t in BIO_TEMPLATES[a]}
    assert all(s.rstrip(".") in true for s in sentences)
    assert str(p.birth_year) not in text  # no dates: the four facts only


# --- measuring --------------------------------------------------------------------------------
def test_corpus_stats_by_hand(lab):
    s = lab.stats(["a b c a b c"])
    assert (s.n_words, s.distinct_3grams, s.vocabulary, s.people) == (6, 3, 3, 0)
    assert s.true_sentences == 0.0
    cut = lab.stats(["a b c", "d e f"], word_budget=4)  # the budget cuts the second document
    assert (cut.n_words, cut.distinct_3grams, cut.vocabulary) == (4, 1, 4)
    p = lab.people[0]
    true = f"{p.name} studied at {p.university}."
    mixed = lab.stats([f"{true} {p.name} studied at {p.field}."])
    assert mixed.true_sentences == 0.5 and mixed.people == 1
    assert lab.stats(lab.real).true_sentences == 1.0


def test_fact_recall_asks_each_fact_in_the_real_phrasings(lab):
    # one (person, attribute, phrasing) per sentence of the real corpus, at least one per fact
    asked = {(n, a) for n, a, _ in lab.real_phrasings}
    assert asked == {(p.name, a) for p in lab.people for a in ATTRIBUTES}
    torch.manual_seed(0)
    untrained = lab.train(lab.real, CollapseConfig(steps=1, lr=1e-6), seed=0)
    rare, common = lab.fact_recall(untrained)
    assert rare < 0.2 and common < 0.2


def test_guess_recall_is_the_commonest_value_per_attribute(lab):
    people = {p.name: p for p in lab.people}
    values = {a: [] for a in ATTRIBUTES}
    for doc in lab.real:  # every biography is about the person named first
        person = next(p for name, p in people.items() if doc.startswith(name))
        for a in ATTRIBUTES:
            values[a].append(person.fact(a))
    commonest = {a: max(set(v), key=v.count) for a, v in values.items()}
    asked = {True: [], False: []}
    for name, a, _ in lab.real_phrasings:
        asked[name in lab.rare].append(people[name].fact(a) == commonest[a])
    rare, common = lab.guess_recall()
    assert rare == sum(asked[True]) / len(asked[True])
    assert common == sum(asked[False]) / len(asked[False])
    assert 0 < rare < common < 1  # the commonest values belong to the most mentioned people


def test_a_model_trained_on_the_real_text_recalls_its_facts():
    lab = CollapseLab(seed=0, n_people=8, top_mentions=3)
    model = lab.train(lab.real, CollapseConfig(steps=150, batch_size=16), seed=0)
    rare, common = lab.fact_recall(model)
    assert common > 0.6 and rare > 0.4, (rare, common)


# --- the Gaussian toy -------------------------------------------------------------------------
def test_gaussian_refit_by_hand_and_its_collapse():
    sd = gaussian_refit(generations=1, n_samples=5, chains=2, seed=3)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, generator=g, dtype=torch.float64)
    x[:, :0] = torch.randn(2, 0, generator=g, dtype=torch.float64)
    assert sd.shape == (2, 2) and torch.all(sd[:, 0] == 1.0)
    assert torch.allclose(sd[:, 1], x.std(dim=1))
    alone = gaussian_refit(1000, 100, real_share=0.0, chains=50)
    mixed = gaussian_refit(1000, 100, real_share=0.1, chains=50)
    assert alone[:, -1].median() < 0.1 < 0.9 < mixed[:, -1].median() < 1.1
    assert torch.allclose(gaussian_refit(5, 100, real_share=1.0, chains=3)[:, 1:].mean(),
                          torch.tensor(1.0, dtype=torch.float64), atol=0.15)
    with pytest.raises(ValueError, match="real_share"):
        gaussian_refit(real_share=1.5)


# --- the chain --------------------------------------------------------------------------------
def test_run_shares_generation_zero_caches_and_extends(lab):
    two = lab.run(0.0, 2, TINY)
    assert [g.index for g in two] == [0, 1] and two[0].real_share == 1.0
    assert two[1].real_share == 0.0
    assert lab.run(0.0, 2, TINY) == two  # cached
    three = lab.run(0.0, 3, TINY)
    assert three[:2] == two and three[2].index == 2  # extended, not redone
    mixed = lab.run(0.5, 2, TINY)
    assert mixed[0].heldout_loss == two[0].heldout_loss  # the same generation-0 model
    assert mixed[0].corpus == two[0].corpus
    assert mixed[1].heldout_loss != two[1].heldout_loss
    for g in three:
        assert g.stats.n_words == TINY.word_budget and g.corpus
        assert 0 <= g.rare_recall <= 1 and g.heldout_loss > 0
    with pytest.raises(ValueError, match="real_share"):
        lab.run(1.2, 2, TINY)
    with pytest.raises(ValueError, match="generations"):
        lab.run(0.0, 0, TINY)
    with pytest.raises(ValueError, match="temperature"):
        CollapseConfig(temperature=0)
    with pytest.raises(ValueError, match="steps must be"):
        CollapseConfig(steps=0)
    with pytest.raises(ValueError, match="word_budget"):
        CollapseConfig(word_budget=10)
    with pytest.raises(ValueError, match="n_people"):
        CollapseLab(n_people=2)


@pytest.mark.slow
def test_own_output_only_collapses_and_real_data_holds_it_off():
    """The chapter's effect, smaller: three generations of a 24-person world."""
    lab = CollapseLab(seed=0, n_people=24, top_mentions=8)
    config = CollapseConfig(steps=100, temperature=0.7, word_budget=1500)
    alone, mixed = lab.run(0.0, 3, config), lab.run(0.5, 3, config)
    assert alone[-1].heldout_loss > 1.4 * alone[0].heldout_loss
    assert alone[-1].stats.vocabulary < alone[0].stats.vocabulary
    assert mixed[-1].heldout_loss < alone[-1].heldout_loss
    assert mixed[-1].stats.distinct_3grams > alone[-1].stats.distinct_3grams


# --- pictures and the playground --------------------------------------------------------------
def _fake_chain(losses):
    stats = CorpusStats(100, 50, 40, 5, 0.5)
    return [Generation(i, 0.0, loss, 0.1, 0.5, stats, ["text"]) for i, loss in enumerate(losses)]


def test_chain_plot_and_table():
    fig = collapseviz.chain_plot({"no real data": _fake_chain([1.0, 2.0, 3.0])},
                                 CorpusStats(100, 80, 60, 9, 1.0), guess=(0.1, 0.2))
    axes = fig.axes
    assert len(axes) == 4 and all(ax.get_title() and ax.get_ylabel() for ax in axes)
    assert list(axes[0].lines[0].get_ydata()) == [1.0, 2.0, 3.0]
    assert axes[1].lines[-1].get_ydata()[0] == 80  # the real corpus as a reference line
    assert [ln.get_ydata()[0] for ln in axes[3].lines[2:]] == [0.2, 0.1]  # guessing lines
    assert "100 words" in axes[1].get_ylabel()
    table = collapseviz.chain_table(_fake_chain([1.0, 2.5]))
    assert "recall rare" in table and table.splitlines()[2].split()[2] == "2.50"
    ax = collapseviz.gaussian_plot({"alone": gaussian_refit(10, 20, chains=5)})
    assert ax.get_title() and ax.get_yscale() == "log"
    plt.close("all")


def test_playground_runs_the_chain_it_shows(lab):
    pg = collapseviz.collapse_playground(lab, TINY, real_share=0.0, generations=2)
    assert pg.error is None and pg.calls == 1 and "recall rare" in pg.last_text
    pg.controls["real_share"].value = 0.5
    pg.controls["generations"].value = 3
    pg.button.click()
    assert pg.error is None and pg.calls == 2
    chain = lab.run(0.5, 3, CollapseConfig(**{**vars(TINY), "temperature": 0.8}))
    assert pg.last_text.startswith(collapseviz.chain_table(chain))
