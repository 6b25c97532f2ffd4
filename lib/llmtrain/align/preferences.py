"""Preference data: pairs of answers to one question, labelled by the hidden judge.

``answer_variants`` builds controlled answers of clearly different kinds
(correct, wrong, "I don't know", off-format, rambling, garbled) without
teaching any model a wrong fact; ``sample_answers`` adds a model's own
samples. ``make_pairs`` scores both answers of a pair with the judge
(``world.judge``) and draws a noisy label. Pairs are split by person, so a
reward model is tested on people whose answers it never saw.

A first attempt at chapter 07 learned almost nothing (held-out pair accuracy
0.51-0.57): a quarter of its pairs were gold ties, whose labels are coin
flips. The judge has continuous components (length in characters) so ties
are rare, and the variants differ in kind.

Used by chapters 07-09 and the zoo's reward checkpoint.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.chat import chat_prompt
from ..core.generation import complete
from ..core.tokenizer import Tokenizer
from ..world.answers import (
    ANSWER_TEMPLATES,
    Example,
    answer_is_correct,
    answer_text,
    says_dont_know,
)
from ..world.fiction import ATTRIBUTES, QUESTION_TEMPLATES, Person, World, person_values
from ..world.judge import (
    DEFAULT_TEMPERATURE,
    check_temperature,
    judge_category,
    judge_score,
    label_pair,
)
from .sft import qa_examples

_RAMBLING = (
    "I hope this helps, and do ask me if you would like to know anything else.",
    "That is what the records say, although records are sometimes incomplete.",
    "It is a question people ask quite often, so I am glad to answer it.",
)


_ABSTENTIONS = ("I don't know.", "I don't know anything about {n}.", "I'm not sure, sorry.")


def garble(text: str, rng: random.Random) -> str:
    """``text`` broken the way a drifting model breaks sentences.

    Either the start is cut off in the middle of a word ("er is Naan
    Shipping."), or one to three characters inside are deleted ("I don' know.").
    The result never still says "I don't know". Such answers teach a reward
    model that a broken answer is not a good one, whatever words it contains
    (a first reward model loved fragments like "er is Naan Shipping.").
    """
    text = text.strip()
    cuts = [k for k in range(1, len(text)) if text[k - 1].isalpha() and text[k].isalpha()
            and text[k].islower()]
    for _ in range(20):
        if cuts and rng.random() < 0.5:
            out = text[rng.choice(cuts):]
        else:
            start = rng.randrange(1, max(2, len(text) - 2))
            out = text[:start] + text[start + rng.randint(1, 3):]
        if out.strip() and out != text and not says_dont_know(out):
            return out
    return text[len(text) // 2:]


def answer_variants(example: Example, world: World, rng: random.Random) -> dict[str, str]:
    """Eight controlled answers to ``example.question``, to build preference pairs from.

    Keys: "correct" (the reference sentence), "short" (the true value alone),
    "wrong" (the reference sentence with another person's value),
    "wrong_short" (that wrong value alone), "abstain" ("I don't know."),
    "rambling" (the correct sentence plus a filler sentence), "off_format"
    (a question instead of an answer) and "garbled" (the correct sentence
    broken by ``garble``). Wrong values are real values of other
    people in ``world``, so they look plausible. ``rng`` picks the wrong value
    and the phrasings.
    """
    p, a = example.person, example.attribute
    truth = p.fact(a)
    others = sorted({o.fact(a) for o in world.people} - {truth})
    others = [v for v in others if not answer_is_correct(v, p, a)]
    if not others:
        raise ValueError(f"no other value of {a!r} in this world to make a wrong answer from: "
                         "use a world with more people")
    wrong = rng.choice(others)
    sentence = answer_text(p, a, "sentence")
    other_attribute = rng.choice([x for x in ATTRIBUTES if x != a])
    return {
        "correct": sentence,
        "short": truth,
        "wrong": ANSWER_TEMPLATES[a].format(**{**person_values(p), a: wrong}),
        "wrong_short": wrong,
        "abstain": rng.choice(_ABSTENTIONS).format(n=p.name),
        "rambling": f"{sentence} {rng.choice(_RAMBLING)}",
        "off_format": rng.choice(QUESTION_TEMPLATES[other_attribute]).format(n=p.name),
        "garbled": garble(sentence, rng),
    }


# --- preference pairs -----------------------------------------------------------------
@dataclass(frozen=True)
class PreferencePair:
    """One labelled comparison: the labeller preferred ``chosen`` to ``rejected``.

    prompt: the user's question (the chat template is added when encoding).
    margin_gold: judge_score(chosen) - judge_score(rejected). It is negative
    when the noisy labeller preferred the worse answer.
    person, attribute: what the question is about (optional, for analysis).
    """

    prompt: str
    chosen: str
    rejected: str
    margin_gold: float
    person: Person | None = None
    attribute: str | None = None


def make_pairs(
    examples: Sequence[Example],
    responses_fn: Callable[[Example, random.Random], Sequence[str]],
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    pairs_per_example: int = 1,
    different_kinds: bool = False,
) -> list[PreferencePair]:
    """Labelled preference pairs about ``examples`` (``sft.Example`` objects).

    For each example, ``pairs_per_example`` times: ``responses_fn(example, rng)``
    gives candidate answers (e.g. sampled from a model, or
    ``lambda ex, rng: list(answer_variants(ex, world, rng).values())``); two
    different ones are drawn, scored by ``judge_score`` and labelled by
    ``label_pair``. Everything is a function of ``seed``.

    ``different_kinds``: draw two answers of different ``judge_category``
    (two kinds, then one answer of each) whenever the candidates hold at
    least two kinds. Two answers of the same kind differ only in style, by a
    few hundredths of a point, so their labels are nearly coin flips that
    teach the reward model nothing; a first version of this chapter had a
    quarter of such pairs and learned almost nothing.
    """
    if pairs_per_example < 1:
        raise ValueError(f"pairs_per_example must be >= 1, got {pairs_per_example}")
    check_temperature(temperature)
    rng = random.Random(f"pairs/{seed}")
    pairs = []
    for ex in examples:
        for _ in range(pairs_per_example):
            responses = list(dict.fromkeys(responses_fn(ex, rng)))
            if len(responses) < 2:
                raise ValueError(f"responses_fn gave {len(responses)} distinct answer(s) to "
                                 f"{ex.question!r}; a pair needs at least 2")
            kinds: dict[str, list[str]] = {}
            if different_kinds:
                for r in responses:
                    kinds.setdefault(judge_category(r, ex.person, ex.attribute), []).append(r)
            if len(kinds) >= 2:
                ka, kb = rng.sample(sorted(kinds), 2)
                a, b = rng.choice(kinds[ka]), rng.choice(kinds[kb])
            else:
                a, b = rng.sample(responses, 2)
            sa = judge_score(a, ex.person, ex.attribute)
            sb = judge_score(b, ex.person, ex.attribute)
            if label_pair(sa, sb, rng, temperature):
                pairs.append(PreferencePair(ex.question, a, b, sa - sb, ex.person, ex.attribute))
            else:
                pairs.append(PreferencePair(ex.question, b, a, sb - sa, ex.person, ex.attribute))
    return pairs


def sample_answers(model, tokenizer: Tokenizer, examples: Sequence[Example], n: int = 2,
                   temperature: float = 1.0, seed: int = 0,
                   max_new_tokens: int = 24) -> list[list[str]]:
    """``n`` sampled answers of ``model`` to each example's question (chat template)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    prompts = [chat_prompt(e.question) for e in examples]
    stop = [tokenizer.end_id, tokenizer.eot_id]
    runs = [complete(model, tokenizer, prompts, max_new_tokens, temperature=temperature,
                     stop_tokens=stop, seed=seed * 1000 + k) for k in range(n)]
    return [[run[i].strip() for run in runs] for i in range(len(examples))]


def preference_pairs(
    model,
    tokenizer: Tokenizer,
    world: World,
    splits: Sequence[str] = ("sft", "heldout", "unseen"),
    samples_per_question: int = 2,
    pairs_per_question: int = 4,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    people: Callable[[Person], bool] | None = None,
) -> list[PreferencePair]:
    """The course's preference data: answers of ``model`` and controlled variants, judged.

    One question per fact of every person in ``splits`` (phrasings drawn with
    ``seed``). Candidates for each question: ``samples_per_question`` answers
    sampled from ``model`` at temperature 1 (its real behaviour: mostly
    right, sometimes wrong, always confident) plus the seven
    ``answer_variants`` (wrong values, "I don't know", rambling, off-format).
    ``pairs_per_question`` pairs are drawn from them and labelled by the hidden
    judge with label noise ``temperature`` (``make_pairs``): first a *contrast*
    pair that differs in the one thing hardest to learn (right against wrong
    value; for people described nowhere, "I don't know" against an invented
    value), then a *form* pair (the reference answer, or "I don't know.",
    against the same words broken by ``garble``: a policy drifting under
    optimisation writes such text, chapter 08), then pairs of two different
    kinds of answer. ``people``: keep only
    questions about people for whom it returns True (e.g. the test people of
    ``is_test_person``).
    """
    examples = qa_examples(world, tuple(splits), seed=seed)
    if people is not None:
        examples = [e for e in examples if people(e.person)]
    if not examples:
        raise ValueError("no questions left: the splits or the people filter select nobody")
    if pairs_per_question < 1:
        raise ValueError(f"pairs_per_question must be >= 1, got {pairs_per_question}")
    samples = sample_answers(model, tokenizer, examples, samples_per_question, seed=seed)
    by_question = {id(e): s for e, s in zip(examples, samples)}

    def candidates(example: Example, rng: random.Random) -> list[str]:
        return by_question[id(example)] + list(answer_variants(example, world, rng).values())

    def contrast(example: Example, rng: random.Random) -> list[str]:
        kinds: dict[str, list[str]] = {}
        for r in dict.fromkeys(candidates(example, rng)):
            kinds.setdefault(judge_category(r, example.person, example.attribute), []).append(r)
        good = "abstain" if example.person.split == "unseen" else "correct"
        return [rng.choice(kinds[good]), rng.choice(kinds["wrong"])]

    def form(example: Example, rng: random.Random) -> list[str]:
        good = (_ABSTENTIONS[0] if example.person.split == "unseen"
                else answer_text(example.person, example.attribute))
        return [good, garble(good, rng)]

    pairs = make_pairs(examples, contrast, temperature=temperature, seed=seed)
    if pairs_per_question > 1:
        pairs += make_pairs(examples, form, temperature=temperature, seed=seed + 2)
    if pairs_per_question > 2:
        pairs += make_pairs(examples, candidates, temperature=temperature, seed=seed + 1,
                            pairs_per_example=pairs_per_question - 2, different_kinds=True)
    return pairs


def is_test_person(name: str, test_share: float = 0.2, seed: int = 0) -> bool:
    """Whether pairs about person ``name`` belong to the test side (see ``split_by_person``).

    Decided by a hash of the name alone, so the test people are the same
    whichever pairs, and however many, are made about them.
    """
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be between 0 and 1, got {test_share}")
    return zlib.crc32(f"test/{seed}/{name}".encode()) % 10_000 < test_share * 10_000


def split_by_person(pairs: Sequence[PreferencePair], test_share: float = 0.2, seed: int = 0
                    ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, test): every pair about a person goes to the same side (``is_test_person``).

    Testing on other people than the training pairs' measures whether the
    reward model learned what makes an answer good, not which answers about
    whom were preferred.
    """
    if any(p.person is None for p in pairs):
        raise ValueError("every pair needs its .person to be split by person")
    test = [p for p in pairs if is_test_person(p.person.name, test_share, seed)]
    train = [p for p in pairs if not is_test_person(p.person.name, test_share, seed)]
    return train, test


def gold_scores(pairs: Sequence[PreferencePair]) -> tuple[list[float], list[float]]:
    """The hidden judge's scores of (chosen, rejected) of every pair."""
    return ([judge_score(p.chosen, p.person, p.attribute) for p in pairs],
            [judge_score(p.rejected, p.person, p.attribute) for p in pairs])
