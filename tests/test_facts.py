from __future__ import annotations

import pytest

from llmtrain.world.facts import FactCheck, accuracy, phrasing_prompts, probe_facts
from llmtrain.world.fiction import ATTRIBUTES, World


@pytest.fixture(scope="module")
def world_and_docs():
    world = World.generate(seed=3, n_people=20, n_unseen=2)
    return world, world.pretraining_documents(bios_per_person=2, n_faq=5, n_stories=5)


def test_bio_prompts_were_seen_and_probe_prompts_were_not(world_and_docs):
    world, docs = world_and_docs
    n_probe = 0
    for person in world.people_in("sft", "heldout"):
        text = "\n".join(d.text for d in docs if d.about == person.name)
        for a in ATTRIBUTES:
            prompts = phrasing_prompts(world, person, a, docs)
            if "bio" in prompts:
                assert prompts["bio"][0] in text
            if "probe" in prompts:
                n_probe += 1
                assert prompts["probe"][0] not in text
                assert prompts["probe"][0].startswith(person.name) or person.name in \
                    prompts["probe"][0]
            assert prompts["records"][0] not in "\n".join(d.text for d in docs)
    assert n_probe > 20  # two bios leave most phrasings unseen for each person


def test_probe_facts_with_a_model_that_knows_nothing(world_and_docs):
    from llmtrain.core.model import GPT, preset
    from llmtrain.core.tokenizer import train_bpe

    world, docs = world_and_docs
    tok = train_bpe([d.text for d in docs], 400)
    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=64)).eval()
    checks = probe_facts(model, tok, world, world.people_in("sft")[:2], documents=docs)
    assert checks and accuracy(checks) == 0.0
    with pytest.raises(ValueError, match="phrasing"):
        probe_facts(model, tok, world, [], phrasing="quiz")


def test_a_check_is_correct_when_the_answer_starts_with_the_truth():
    assert FactCheck("A", "field", "p", " Law", " Law, mostly").correct
    assert not FactCheck("A", "field", "p", " Law", " Music").correct
    assert accuracy([]) == 0.0
