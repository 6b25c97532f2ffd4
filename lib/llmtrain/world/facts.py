"""What does a model know? Checking its completions against the world's truth.

A fact can be asked for in three kinds of phrasing (``probe_facts(phrasing=...)``):

* ``"bio"``: a sentence start the model saw *for this very person* in
  pretraining ("Lele Rari was born in the city of"): recall of memorised text;
* ``"probe"``: a sentence start the model saw for *other* people but never for
  this one: the fact and the phrasing were learned separately and must be
  combined, so a correct answer shows knowledge, not recitation;
* ``"records"``: a sentence form that never occurs in pretraining at all
  ("Records show that the birthplace of Lele Rari is"). Tiny models mostly
  fail here: they continue with the phrasings they know.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..core.generation import complete
from .fiction import ATTRIBUTES, BIO_TEMPLATES, Document, Person, World, person_values

PHRASINGS = ("bio", "probe", "records")


@dataclass
class FactCheck:
    person: str
    attribute: str
    prompt: str
    truth: str
    answer: str

    @property
    def correct(self) -> bool:
        return self.answer.strip().startswith(self.truth.strip())


def phrasing_prompts(world: World, person: Person, attribute: str,
                     documents: list[Document]) -> dict[str, tuple[str, str]]:
    """For one fact: {"bio": (prompt, answer), "probe": ..., "records": ...}.

    "bio" or "probe" is missing when every template was (or none was) used
    for this person in ``documents``.
    """
    text = _text_about(documents).get(person.name, "")
    values = person_values(person)
    key = "{" + attribute + "}"
    answer = " " + str(person.fact(attribute))
    out = {"records": world.probe(person, attribute)}
    for template in BIO_TEMPLATES[attribute]:
        if key not in template:
            continue
        prompt = template[: template.index(key)].rstrip().format(**values)
        kind = "bio" if prompt in text else "probe"
        out.setdefault(kind, (prompt, answer))
    return out


_last_corpus: list = [None, {}]  # (the documents list, its text per person): one entry


def _text_about(documents: list[Document]) -> dict[str, str]:
    """All text about each person in ``documents`` (cached for the last list seen)."""
    if _last_corpus[0] is not documents:  # identity, not id(): a freed id can be reused
        about: dict[str, list[str]] = defaultdict(list)
        for d in documents:
            if d.about:
                about[d.about].append(d.text)
        _last_corpus[:] = [documents, {name: "\n".join(t) for name, t in about.items()}]
    return _last_corpus[1]


def probe_facts(model, tokenizer, world: World, people: list[Person],
                attributes: tuple[str, ...] = ATTRIBUTES, phrasing: str = "probe",
                documents: list[Document] | None = None,
                max_new_tokens: int = 8) -> list[FactCheck]:
    """Greedy completions of one prompt per (person, attribute) in the given phrasing.

    ``documents`` is the pretraining corpus the model saw (default: the world's
    standard corpus, the one the zoo's base model was trained on); it decides
    which phrasings count as seen for each person. Facts with no prompt of
    the requested kind are skipped.
    """
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing must be one of {PHRASINGS}, got {phrasing!r}")
    if documents is None:
        documents = world.pretraining_documents()
    items = []
    for p in people:
        for a in attributes:
            prompts = phrasing_prompts(world, p, a, documents)
            if phrasing in prompts:
                items.append((p, a, *prompts[phrasing]))
    answers = complete(model, tokenizer, [it[2] for it in items], max_new_tokens, stop=".")
    return [FactCheck(p.name, a, prompt, truth, ans)
            for (p, a, prompt, truth), ans in zip(items, answers)]


def accuracy(checks: list[FactCheck]) -> float:
    """Share of checks whose answer starts with the true value."""
    return sum(c.correct for c in checks) / max(1, len(checks))
