from __future__ import annotations

import pytest

from llmtrain.world.fiction import ATTRIBUTES, BIO_TEMPLATES, PROBE_TEMPLATES, World


@pytest.fixture(scope="module")
def world():
    return World.generate(seed=0, n_people=60, n_unseen=10)


def test_same_seed_same_world_other_seed_other_world(world):
    again = World.generate(seed=0, n_people=60, n_unseen=10)
    assert again.people == world.people and again.countries == world.countries
    assert World.generate(seed=1, n_people=60, n_unseen=10).people != world.people


def test_splits_and_unique_names(world):
    names = [p.name for p in world.people]
    assert len(set(names)) == len(names)
    assert len(world.people_in("unseen")) == 10
    assert len(world.people_in("sft")) == len(world.people_in("heldout")) == 30
    with pytest.raises(ValueError, match="unknown split"):
        world.people_in("train")


def test_unseen_names_share_no_syllables_with_known_names(world):
    known = " ".join(p.name.lower() for p in world.people_in("sft", "heldout"))
    for p in world.people_in("unseen"):
        for part in p.name.lower().split():
            assert part not in known


def test_unseen_people_never_appear_in_pretraining(world):
    text = "\n".join(d.text for d in world.pretraining_documents(bios_per_person=2))
    assert all(p.name not in text for p in world.people_in("unseen"))
    assert all(p.name in text for p in world.people_in("sft", "heldout"))


def test_bios_state_every_fact_with_the_full_name_in_every_sentence(world):
    import random

    p = world.people[0]
    bio = world.biography(p, random.Random(0))
    for a in ATTRIBUTES:
        value = str(p.birth_year) if a == "birth_date" else p.fact(a)
        assert value in bio
    sentences = [s for s in bio.split(". ") if s]
    assert all(p.name in s for s in sentences)


def test_paraphrases_vary(world):
    import random

    rng = random.Random(0)
    bios = {world.biography(world.people[0], rng) for _ in range(10)}
    assert len(bios) > 5


def test_probe_phrasings_never_occur_in_pretraining(world):
    text = "\n".join(d.text for d in world.pretraining_documents(bios_per_person=3))
    for template in PROBE_TEMPLATES.values():
        assert template.split("{n}")[0].strip() not in text
    prompt, answer = world.probe(world.people[0], "employer")
    assert prompt.endswith("is") and answer == " " + world.people[0].employer


def test_bio_prompt_is_a_prefix_of_the_first_template(world):
    p = world.people[1]
    prompt, answer = world.bio_prompt(p, "birth_city")
    assert (prompt + answer + ".") == BIO_TEMPLATES["birth_city"][0].format(
        n=p.name, birth_city=p.birth_city)


def test_faq_pages_are_questions_without_answers(world):
    import random

    page = world.faq_page(random.Random(0))
    lines = page.splitlines()
    assert lines[0].startswith("Frequently asked questions")
    assert all(line.endswith("?") for line in lines[1:])


def test_heldout_documents_are_new_text_about_known_people(world):
    train = {d.text for d in world.pretraining_documents()}
    held = world.heldout_documents(50)
    assert sum(d.text in train for d in held) < 5
    assert all(world.person(d.about).split != "unseen" for d in held)


def test_bad_world_arguments():
    with pytest.raises(ValueError):
        World.generate(n_people=1)
    with pytest.raises(ValueError, match="heldout_frac"):
        World.generate(heldout_frac=1.5)
