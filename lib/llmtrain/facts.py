"""What does a model know? Checking its completions against the world's truth."""

from __future__ import annotations

from dataclasses import dataclass

from .generation import complete
from .world import ATTRIBUTES, Person, World


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


def probe_facts(model, tokenizer, world: World, people: list[Person],
                attributes: tuple[str, ...] = ATTRIBUTES, phrasing: str = "probe",
                max_new_tokens: int = 8) -> list[FactCheck]:
    """Greedy completions of one prompt per (person, attribute).

    phrasing "probe" uses sentences never seen in pretraining ("Records show
    that the birthplace of X is"); "bio" uses the first biography template cut
    before the value ("X was born in the city of").
    """
    if phrasing not in ("probe", "bio"):
        raise ValueError(f"phrasing must be 'probe' or 'bio', got {phrasing!r}")
    items = []
    for p in people:
        for a in attributes:
            if phrasing == "probe":
                prompt, truth = world.probe(p, a)
            else:
                prompt, truth = world.bio_prompt(p, a)
            items.append((p, a, prompt, truth))
    answers = complete(model, tokenizer, [it[2] for it in items], max_new_tokens, stop=".")
    return [FactCheck(p.name, a, prompt, truth, ans)
            for (p, a, prompt, truth), ans in zip(items, answers)]


def accuracy(checks: list[FactCheck]) -> float:
    """Share of checks whose answer starts with the true value."""
    return sum(c.correct for c in checks) / max(1, len(checks))
