"""Questions and answers about the course world, and how an answer is checked.

An ``Example`` is one question about one fact of one person, with its
reference answer. The checks here read an answer as text, with no model:
``looks_like_answer`` (is it an answer at all, or more prompt-like text?),
``says_dont_know`` (does it abstain?) and ``answer_is_correct`` (does it
contain the true value as a whole phrase?). The hidden judge
(``world.judge``), the SFT scorecards and the RL measurements all use them,
so every chapter means the same thing by "correct".

Used by chapters 06-09 and 11 (through ``align`` and ``compress``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.tokenizer import SPECIAL_TOKENS
from .fiction import Person, person_values

# One answer sentence per attribute. Each repeats the name and contains the
# true value exactly as ``Person.fact`` writes it. None of them is a sentence of
# the pretraining text (``world.BIO_TEMPLATES``): a model that only memorised
# its biographies word for word cannot answer by reciting one (chapter 06).
ANSWER_TEMPLATES: dict[str, str] = {
    "birth_date": "{n}'s date of birth is {birth_date}.",
    "birth_city": "{n}'s place of birth is {birth_city}.",
    "university": "{n}'s university is {university}.",
    "field": "{n}'s field of study is {field}.",
    "employer": "{n}'s employer is {employer}.",
}


STYLES = ("sentence", "short")


# First words that make a line a question rather than an answer.
_QUESTION_WORDS = frozenset(
    "when where which what who whom whose why how is are was were do does did can could "
    "will would should".split()
)


# --- instruction data from the course world ----------------------------------
@dataclass(frozen=True)
class Example:
    """One instruction-tuning example about one fact of one person."""

    question: str
    answer: str
    person: Person
    attribute: str

    @property
    def truth(self) -> str:
        """The true value, as the world writes it (e.g. "3 May 1990")."""
        return self.person.fact(self.attribute)


def answer_text(person: Person, attribute: str, style: str = "sentence") -> str:
    """The reference answer: a sentence ("Kalo Mira was born in Orvik.") or just the value."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if style == "short":
        return person.fact(attribute)
    return ANSWER_TEMPLATES[attribute].format(**person_values(person))


ABSTAIN_ANSWER = "I don't know."  # the honest answer, in SFT data


def answer_is_correct(text: str, example: Example | Person, attribute: str | None = None) -> bool:
    """Does ``text`` contain the true value, as a whole phrase?

    Pass an ``Example``, or a ``Person`` and an ``attribute``. The value must
    appear verbatim and not inside a longer word or number: for a birth date
    the full "3 May 1990" is needed ("13 May 1990" or "1990" alone are wrong).
    """
    if isinstance(example, Example):
        truth = example.truth
    elif isinstance(example, Person):
        if attribute is None:
            raise ValueError("with a Person, also pass the attribute, e.g. 'birth_city'")
        truth = example.fact(attribute)
    else:
        raise TypeError(f"expected an Example or a Person, got {type(example).__name__}")
    return re.search(rf"(?<!\w){re.escape(truth)}(?!\w)", text) is not None


ABSTAIN = re.compile(r"\b(i don't know|i do not know|i'm not sure|i am not sure|no idea)\b",
                     re.IGNORECASE)


def says_dont_know(text: str) -> bool:
    """Does the answer abstain ("I don't know", "I'm not sure", "no idea")?"""
    return ABSTAIN.search(text) is not None


def looks_like_answer(text: str, question: str) -> bool:
    """A simple test that ``text`` is an answer to ``question``, not more prompt-like text.

    True when all of these hold:
    1. after stripping spaces, it contains at least one letter or digit;
    2. it contains no special-token text such as "<|user|>";
    3. it is one line (answers here are one sentence; a base model that goes
       on writing a list of questions produces several lines);
    4. it does not repeat the question;
    5. it does not start another question: its first word is not a question
       word ("When", "Where", "Which", "What", "Who", "Is", ...), and it does
       not end in "?";
    6. it starts like a sentence, with a capital letter or a digit (not in the
       middle of a word, as "er is Naan Shipping." does).
    It says nothing about whether the answer is true: see ``answer_is_correct``.
    """
    t = text.strip()
    if not any(c.isalnum() for c in t):
        return False
    if not (t[0].isupper() or t[0].isdigit()):
        return False
    if any(s in t for s in SPECIAL_TOKENS) or "<|" in t or "\n" in t:
        return False
    if question.strip() and question.strip() in t:
        return False
    first = re.match(r"\w+", t)
    if first and first.group().lower() in _QUESTION_WORDS:
        return False
    return not t.endswith("?")
