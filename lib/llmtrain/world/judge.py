"""The hidden judge: the course's stand-in for human labellers.

The course has no human labellers, so a *hidden judge* plays them:
``judge_score`` gives every answer a gold score (is it correct? honest? well
formed? concise?) and ``label_pair`` turns two gold scores into a noisy
preference through a Bradley-Terry draw, as a tired human would. Reward
models never see the judge, only its labels; the gold score is what later
chapters use to catch a policy that fools the reward model. Because the
labels are noisy, even a perfect model cannot agree with all of them:
``bayes_accuracy`` is that ceiling.

Used by chapters 07-09 (preference data, gold reward) and 00.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .answers import answer_is_correct, looks_like_answer, says_dont_know
from .fiction import ATTRIBUTES, QUESTION_TEMPLATES, Person

# --- the hidden judge ---------------------------------------------------------------
# The judge's gold score = a base score for the kind of answer + small style terms.
# The style terms add up to at most +0.15 and at least -0.30, less than the 0.5 between
# two kinds, so a kind never overtakes a better kind however it is phrased.
CORRECT_SCORE = 1.0  # the true value, as a whole phrase (sft.answer_is_correct)


ABSTAIN_SCORE = 0.5  # "I don't know" about a person the corpus describes


WRONG_SCORE = 0.0  # a well-formed answer with a wrong value (a confident error)


OFF_FORMAT_SCORE = -1.0  # not an answer at all (sft.looks_like_answer is False)


NAME_BONUS = 0.10  # a full sentence that names the person


TIDY_BONUS = 0.05  # starts with a capital letter and ends with a full stop


LENGTH_COST = 0.003  # per character: shorter is better; 40 characters cost 0.12


MAX_LENGTH_COST = 0.30  # reached at 100 characters


DEFAULT_TEMPERATURE = 0.2  # noise of the labeller (see label_pair)


KINDS = ("correct", "abstain", "wrong", "off_format")


def judge_category(response: str, person: Person, attribute: str) -> str:
    """The kind of answer: "correct", "abstain", "wrong" or "off_format".

    Checked in this order:
    1. "off_format" unless ``sft.looks_like_answer`` holds against every
       phrasing of the question (several lines, a new question, special
       tokens, an empty answer...);
    2. "abstain" when it says "I don't know", "I'm not sure" or "no idea";
    3. "correct" when it contains the true value (``sft.answer_is_correct``);
    4. "wrong" otherwise.
    People of the "unseen" split are described nowhere, so no model can know
    their facts: for them the honest answer is to abstain, and a definite
    answer is "wrong" even when it happens to match (a lucky guess is still
    invented).
    """
    if not isinstance(response, str):
        raise TypeError(f"response must be a string, got {type(response).__name__}")
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; known: {ATTRIBUTES}")
    questions = [q.format(n=person.name) for q in QUESTION_TEMPLATES[attribute]]
    if not all(looks_like_answer(response, q) for q in questions):
        return "off_format"
    if says_dont_know(response):
        return "abstain"
    if person.split != "unseen" and answer_is_correct(response, person, attribute):
        return "correct"
    return "wrong"


def judge_score(response: str, person: Person, attribute: str) -> float:
    """The hidden judge's gold score of ``response`` to a question about ``person``.

    base (from ``judge_category``): correct 1.0, abstain 0.5, wrong 0.0,
    off-format -1.0; for an "unseen" person abstaining earns the correct
    score, 1.0, since it is the honest answer.
    Style, added to every kind:
    * +0.10 if it names the person (a complete, polite sentence);
    * +0.05 if it starts with a capital letter and ends with a full stop;
    * -0.003 per character (stripped), at most -0.30: concise beats rambling.
    The length term makes ties rare: two answers tie only if they are of the
    same kind, the same style and exactly the same length.
    """
    kind = judge_category(response, person, attribute)
    base = {"correct": CORRECT_SCORE, "abstain": ABSTAIN_SCORE, "wrong": WRONG_SCORE,
            "off_format": OFF_FORMAT_SCORE}[kind]
    if kind == "abstain" and person.split == "unseen":
        base = CORRECT_SCORE
    text = response.strip()
    style = NAME_BONUS if person.name in text else 0.0
    if text[:1].isupper() and text.endswith("."):
        style += TIDY_BONUS
    style -= min(MAX_LENGTH_COST, LENGTH_COST * len(text))
    return base + style


# --- noisy labels -------------------------------------------------------------------
def check_temperature(temperature: float) -> None:
    if not (isinstance(temperature, (int, float)) and temperature >= 0):
        raise ValueError(f"temperature must be a number >= 0 (0: the labeller never errs), "
                         f"got {temperature!r}")


def label_pair(score_a: float, score_b: float, rng, temperature: float = DEFAULT_TEMPERATURE
               ) -> int:
    """A noisy labeller's verdict: 1 if it prefers A, 0 if it prefers B.

    A is preferred with the Bradley-Terry probability
    sigmoid((score_a - score_b) / temperature). Low temperature: the labeller
    nearly always picks the answer with the higher gold score; high
    temperature: nearly a coin flip. Temperature 0 always picks the higher
    score (a tie is still a coin flip). ``rng`` is anything with a
    ``.random()`` method (``random.Random`` or a numpy Generator).
    """
    check_temperature(temperature)
    diff = float(score_a) - float(score_b)
    if temperature == 0:
        p = 0.5 if diff == 0 else float(diff > 0)
    else:
        z = diff / temperature
        p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return int(rng.random() < p)


def bayes_accuracy(scores_a: Sequence[float], scores_b: Sequence[float],
                   temperature: float = DEFAULT_TEMPERATURE) -> float:
    """The best accuracy any model can reach on labels drawn by ``label_pair``.

    For a pair whose labeller prefers A with probability p, the best guess is
    the likelier side, right with probability max(p, 1 - p); the ceiling is
    the mean of that over pairs. Equal scores give 0.5; a huge gap gives 1.
    """
    check_temperature(temperature)
    a = torch.as_tensor(scores_a, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(scores_b, dtype=torch.float64).reshape(-1)
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"need two equally long, non-empty score lists, got {a.numel()} and "
                         f"{b.numel()}")
    gap = (a - b).abs()
    if temperature == 0:
        best = torch.where(gap > 0, 1.0, 0.5)
    else:
        best = torch.sigmoid(gap / temperature)  # = max(p, 1 - p)
    return float(best.mean())
