"""The brief-answer skill of chapter 11: data, judging, scoring and a measured run."""

from __future__ import annotations

import pytest
import torch

from llmtrain.compress import brief_skill, lora
from llmtrain.core.model import GPT, preset
from llmtrain.world.answers import Example
from llmtrain.world.fiction import World


@pytest.fixture(scope="module")
def world():
    return World.generate(seed=0, n_people=20, n_unseen=2)


def test_examples_ask_for_brevity_and_answer_with_the_value(world):
    examples = brief_skill.brief_examples(world, ("sft",))
    assert len(examples) == 5 * len(world.people_in("sft"))
    e = examples[0]
    assert e.question.endswith("? Be brief.")
    assert e.answer == e.truth == e.person.fact(e.attribute)


def test_judge(world):
    person = world.people_in("heldout")[0]
    e = Example("Where was X born? Be brief.", person.birth_city, person, "birth_city")
    assert brief_skill.judge(person.birth_city, e) == (True, True)
    assert brief_skill.judge(f" {person.birth_city}.", e) == (True, True)
    assert brief_skill.judge("Nowhere", e) == (True, False)
    sentence = f"{person.name}'s place of birth is {person.birth_city}."
    assert brief_skill.judge(sentence, e) == (False, False)
    assert brief_skill.judge("", e) == (False, False)
    date = Example("When? Be brief.", person.birth_date, person, "birth_date")
    assert brief_skill.judge(person.birth_date, date) == (True, True)
    assert brief_skill.judge(person.birth_date.split()[-1], date) == (True, False)  # year alone


def test_skill_score_and_finetune_run_measure_what_they_should(world, tok, one_thread):
    torch.manual_seed(0)
    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=48))
    n_base = model.num_params()
    report = lora.apply_lora(model, "all", r=2, alpha=4)
    examples = brief_skill.brief_examples(world, ("sft",))
    result = brief_skill.finetune_run(model, tok, examples, name="r2", steps=3, batch_size=4,
                                   device="cpu")
    assert result.trainable == report.trainable and result.total == n_base + report.trainable
    assert result.fraction == pytest.approx(report.trainable / result.total)
    # AdamW keeps two float32 moments per trained weight, and a step counter per tensor
    assert result.optimizer_bytes == 8 * report.trainable + 4 * 2 * len(report.targets)
    assert len(result.history.loss) == 3 and result.seconds > 0
    score = brief_skill.skill_score(model, tok, world, "heldout", n_people=2)
    assert score.n == 10 and 0 <= score.correct <= score.brief <= 1
    assert len(score.examples) == 3 and score.examples[0][0].endswith("Be brief.")
    with pytest.raises(ValueError, match="'sft' or 'heldout'"):
        brief_skill.skill_score(model, tok, world, "unseen")
    with pytest.raises(ValueError, match="steps"):
        brief_skill.finetune_run(model, tok, examples, steps=0)
