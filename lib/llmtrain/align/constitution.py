"""A rule-based reward from a written constitution: the simpler relative of RLAIF.

Constitutional AI (Bai et al., 2022) and RLAIF (Lee et al., 2023) replace the
human labeller with a model that *judges* responses against a short list of
written principles (for example by the probability it gives to "Yes" after a
judging prompt), and its judgements label preference pairs or score answers.
The course's models are too small to judge, so here the "constitution" is a
handful of principles, each a sentence a person wrote plus a *rule* (Python
code) that scores a response against it. One rule needs a model signal: *has a
language model read about this person?* (``NameFamiliarity``: how surprised
the pretrained base model is by the name, against a threshold). That is a
measurement, not a judgement: the reward is rule-based.

Nobody labels a single pair and nobody checks any fact: the rules know the
world's vocabulary (which words are cities, fields, universities,
companies), not who was born where. ``Constitution.score`` has the same
signature as any ``ppo`` reward function, so the PPO loop runs unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..core.model import GPT
from ..core.tokenizer import Tokenizer
from ..world.answers import Example, looks_like_answer, says_dont_know
from ..world.fiction import FIELDS, World

Check = Callable[[Example, str, bool], float]  # (example, response, name is familiar) -> score


@dataclass(frozen=True)
class Principle:
    """One rule of the constitution: its text, its weight and a check in [-1, 1]."""

    text: str
    weight: float
    check: Check


class NameFamiliarity:
    """The one model signal of the rule-based reward: has a language model read about this name?

    Familiarity is the model's mean log-probability per token of the name
    after a neutral sentence start ("This is a page about"): names the model
    read in thousands of sentences are likely, names built from syllables it
    never saw are not. A name is *familiar* when that score is above
    ``threshold`` (nats per token; chosen by looking at the two histograms in
    chapter 08, as one tunes an AI judge's prompt).
    """

    PREFIX = "This is a page about"

    def __init__(self, model: GPT, tokenizer: Tokenizer, threshold: float = -11.0):
        self.model, self.tokenizer, self.threshold = model, tokenizer, threshold
        self._cache: dict[str, float] = {}

    @torch.no_grad()
    def scores(self, names: Sequence[str]) -> list[float]:
        """Mean log p per token of each name after ``PREFIX`` (nats; higher = more familiar)."""
        todo = [n for n in dict.fromkeys(names) if n not in self._cache]
        if todo:
            device = next(self.model.parameters()).device
            prefix = self.tokenizer.encode(self.PREFIX)
            rows = [prefix + self.tokenizer.encode(" " + n) for n in todo]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), self.tokenizer.pad_id, dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = torch.tensor(r)
            logp = torch.log_softmax(self.model(ids.to(device)).float(), dim=-1)
            for i, (name, r) in enumerate(zip(todo, rows)):
                cols = range(len(prefix) - 1, len(r) - 1)
                self._cache[name] = float(sum(logp[i, t, r[t + 1]] for t in cols) / len(cols))
        return [self._cache[n] for n in names]

    def familiar(self, names: Sequence[str]) -> list[bool]:
        return [s > self.threshold for s in self.scores(names)]


def _topic_words(world: World) -> dict[str, re.Pattern]:
    """For each attribute, a pattern that matches the *kind* of value asked for."""
    def any_of(words):
        return re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))

    return {
        "birth_date": re.compile(r"\b\d{1,2} [A-Z][a-z]+ \d{4}\b"),
        "birth_city": any_of(world.city_country),
        "university": any_of(world.universities),
        "field": any_of(FIELDS),
        "employer": any_of(world.employers),
    }


def default_principles(world: World) -> list[Principle]:
    """The course's constitution: five principles a person might write for an assistant."""
    topics = _topic_words(world)

    def one_sentence(ex, r, familiar):
        return 1.0 if looks_like_answer(r, ex.question) else -1.0

    def honest(ex, r, familiar):
        if says_dont_know(r):
            return -0.5 if familiar else 1.0
        return 0.0 if familiar else -1.0

    def on_topic(ex, r, familiar):
        if says_dont_know(r) or not looks_like_answer(r, ex.question):
            return 0.0
        return 1.0 if topics[ex.attribute].search(r) else -1.0

    def names_person(ex, r, familiar):
        return 1.0 if ex.person.name in r else 0.0

    def brief(ex, r, familiar):
        return -min(1.0, max(0, len(r.strip()) - 40) / 60)

    return [
        Principle("Answer the question in one plain sentence; never ask a question back.",
                  1.0, one_sentence),
        Principle("Do not make up facts about people you have never heard of: say that you "
                  "don't know. Do not refuse to answer about people you know.", 1.0, honest),
        Principle("Answer what was asked: a date for a date, a city for a place, and so on.",
                  0.5, on_topic),
        Principle("Say whom the answer is about.", 0.2, names_person),
        Principle("Be brief: one short sentence is enough.", 0.3, brief),
    ]


class Constitution:
    """A rule-based reward function: written principles with rules, plus a familiarity signal.

    ``score(examples, responses)`` -> (B,) tensor: the weighted sum of every
    principle's check, usable as a ``ppo`` reward function.
    """

    def __init__(self, principles: Sequence[Principle], familiarity: NameFamiliarity):
        if not principles:
            raise ValueError("a constitution needs at least one principle")
        self.principles, self.familiarity = list(principles), familiarity

    def score(self, examples: Sequence[Example], responses: Sequence[str]) -> torch.Tensor:
        if len(examples) != len(responses):
            raise ValueError(f"got {len(examples)} examples but {len(responses)} responses")
        familiar = self.familiarity.familiar([e.person.name for e in examples])
        return torch.tensor([sum(p.weight * p.check(e, r, f) for p in self.principles)
                             for e, r, f in zip(examples, responses, familiar)])

    __call__ = score

    def explain(self, example: Example, response: str) -> list[tuple[str, float]]:
        """Each principle's text and its weighted score for one response."""
        familiar = self.familiarity.familiar([example.person.name])[0]
        return [(p.text, p.weight * p.check(example, response, familiar))
                for p in self.principles]
