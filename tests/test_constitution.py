"""RLAIF: the constitution's principles and the AI labeller's name familiarity."""

from __future__ import annotations

import pytest
import torch

from llmtrain.align.constitution import Constitution, NameFamiliarity, Principle, default_principles
from llmtrain.align.sft import qa_examples
from llmtrain.core.model import GPT, preset

pytestmark = pytest.mark.usefixtures("one_thread")


class FixedFamiliarity:
    """A stand-in labeller: familiar exactly with the names it is given."""

    def __init__(self, names):
        self.names = set(names)

    def familiar(self, names):
        return [n in self.names for n in names]


def _example(world, split, attribute="birth_city"):
    return next(e for e in qa_examples(world, (split,)) if e.attribute == attribute)


def test_the_constitution_prefers_honest_on_topic_short_answers(world):
    known, stranger = _example(world, "heldout"), _example(world, "unseen")
    c = Constitution(default_principles(world), FixedFamiliarity([known.person.name]))
    right = known.answer
    off_topic = f"{known.person.name}'s place of birth is 3 May 1990."
    rambling = right + " I hope this helps, and do ask me anything else you like, any time."
    s = c.score([known] * 5, [right, off_topic, rambling, "I don't know.", "Where?"]).tolist()
    assert s[0] == max(s) and s[0] > s[1] and s[0] > s[2]
    assert s[3] < s[0] and s[4] == min(s)  # refusing a familiar person; not an answer
    invented = stranger.answer  # a confident sentence about someone nobody knows
    honest, made_up = c.score([stranger] * 2, ["I don't know.", invented]).tolist()
    assert honest > made_up
    why = c.explain(stranger, invented)
    assert len(why) == len(default_principles(world)) and min(v for _, v in why) == -1.0


def test_a_constitution_is_a_ppo_reward_function(world):
    c = Constitution([Principle("Say yes.", 2.0, lambda e, r, f: float("yes" in r))],
                     FixedFamiliarity([]))
    exs = qa_examples(world)[:3]
    assert c(exs, ["yes", "no", "yes!"]).tolist() == [2.0, 0.0, 2.0]
    with pytest.raises(ValueError, match="responses"):
        c(exs, ["yes"])
    with pytest.raises(ValueError, match="at least one principle"):
        Constitution([], FixedFamiliarity([]))


def test_name_familiarity_is_the_mean_log_prob_of_the_name(tok):
    torch.manual_seed(0)
    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=32)).eval()
    f = NameFamiliarity(model, tok, threshold=-5.0)
    name = "Kalo Mira"
    prefix, ids = tok.encode(f.PREFIX), tok.encode(f.PREFIX) + tok.encode(" " + name)
    with torch.no_grad():
        logp = model(torch.tensor([ids]))[0].log_softmax(-1)
    want = sum(float(logp[t, ids[t + 1]]) for t in range(len(prefix) - 1, len(ids) - 1))
    want /= len(ids) - len(prefix)
    got = f.scores([name, "Zu Qui"])
    assert got[0] == pytest.approx(want, abs=1e-5)
    assert f.scores([name]) == got[:1]  # cached
    assert f.familiar([name]) == [want > -5.0]
