"""The pipeline on one page (chapter 00): the stages side by side, answer probabilities, costs."""

from __future__ import annotations

import math

import pytest
import torch

from llmtrain.align import sft
from llmtrain.align.dpo import response_logprobs
from llmtrain.align.reward_model import encode_conversations
from llmtrain.course import checkpoints, overview, recipes
from llmtrain.world import answers, fiction


@pytest.fixture(scope="module")
def models(one_thread):
    return overview.load_stages("cpu", ("base", "sft"))


def test_load_stages_names_a_missing_checkpoint():
    with pytest.raises(ValueError, match="no zoo checkpoint 'rlhf'"):
        overview.load_stages("cpu", ("base", "rlhf"))


def test_base_continues_the_text_and_sft_answers(models, tok):
    world = fiction.course_world()
    person = world.people_in("sft")[0]
    question = world.questions(person, "birth_city")[0]
    said = overview.side_by_side(models, tok, [question])
    assert set(said) == {"base", "sft"} and all(len(v) == 1 for v in said.values())
    assert said["base"] == sft.raw_continuation(models["base"], tok, [question])
    assert said["sft"] == sft.answer(models["sft"], tok, [question])
    assert answers.answer_is_correct(said["sft"][0], person, "birth_city")
    with pytest.raises(TypeError, match="list of strings"):
        overview.side_by_side(models, tok, question)


def test_answer_logprob_sums_the_answer_tokens_of_the_chat_format(models, tok):
    q = ["Where was Gababa Tosumi born?", "Who employs Kalo Mira?"]
    a = ["I don't know.", "Kalo Mira's employer is Mobel Systems."]
    got = overview.answer_logprob(models["sft"], tok, q, a)
    ids, last = encode_conversations(tok, q, a, models["sft"].config.block_size)
    with torch.no_grad():
        want = response_logprobs(models["sft"], ids, last, tok.assistant_id)
    assert torch.allclose(got, want, atol=1e-5)
    assert bool((got < 0).all())
    # one answer alone scores the same as in a batch (padding never counts)
    alone = overview.answer_logprob(models["sft"], tok, q[:1], a[:1])
    assert alone.item() == pytest.approx(got[0].item(), abs=1e-4)
    with pytest.raises(ValueError, match="2 questions but 1 answers"):
        overview.answer_logprob(models["sft"], tok, q, a[:1])


def test_sft_makes_the_true_answer_likely_and_base_does_not(models, tok):
    world = fiction.course_world()
    examples = sft.qa_examples(world, ("heldout",), seed=1)[:20]
    qs, ans = [e.question for e in examples], [e.answer for e in examples]
    p_sft = overview.answer_logprob(models["sft"], tok, qs, ans).exp().median().item()
    p_base = overview.answer_logprob(models["base"], tok, qs, ans).exp().median().item()
    assert p_sft > 0.2 > 1e-6 > p_base


def test_stage_costs_follow_the_manifests():
    costs = {c.name: c for c in overview.stage_costs()}
    assert [c.parent for c in costs.values()] == [None, "base", "sft", "sft", "sft"]
    base = checkpoints.manifest("base")
    assert costs["base"].tokens == base["data"]["tokens_trained"]
    recipe = base["recipe"]
    assert costs["base"].examples == recipe["train"]["max_steps"] * recipe["batch_size"]
    assert costs["base"].flops == pytest.approx(6 * base["n_params"] * costs["base"].tokens)
    ppo = recipes.RECIPES["ppo"].train
    assert costs["ppo"].examples == ppo["steps"] * ppo["batch_size"]
    assert costs["ppo"].chapter == "08"
    assert all(c.seconds > 0 for c in costs.values())


def test_real_run_and_published_stages():
    llama = overview.real_run("Llama 3 405B")
    assert math.isclose(llama.flops, 6 * 405e9 * 15.6e12)
    assert abs(llama.flops / llama.reported_flops - 1) < 0.05
    with pytest.raises(ValueError, match="choose from"):
        overview.real_run("GPT-5")
    assert {s.stage for s in overview.PUBLISHED_STAGES} >= {"pretraining", "reward model"}
