from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmtrain.align.sft import (
    SFTBatches,
    abstention_examples,
    answer,
    finetune,
    qa_examples,
    raw_continuation,
    scorecard,
)
from llmtrain.core.chat import chat_prompt, chat_text, encode_example
from llmtrain.core.losses import IGNORE_INDEX, next_token_loss
from llmtrain.core.model import GPT, preset
from llmtrain.core.tokenizer import SPECIAL_TOKENS
from llmtrain.world.answers import (
    ANSWER_TEMPLATES,
    Example,
    answer_is_correct,
    looks_like_answer,
    says_dont_know,
)
from llmtrain.world.fiction import ATTRIBUTES, Person, World

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return World.generate(seed=3, n_people=20, n_unseen=2)


def _person(**changes) -> Person:
    values = dict(name="Kalo Mira", birth_day=3, birth_month="May", birth_year=1990,
                  birth_city="Orvik", birth_country="Orvia", university="Orvik College",
                  field="Law", employer="Salna Labs", split="sft")
    return Person(**{**values, **changes})


# --- the template ---------------------------------------------------------------
def test_chat_template_layout_and_special_tokens_are_single_ids(tok):
    q = "When was Kalo Mira born?"
    assert chat_prompt(q) == "<|user|>When was Kalo Mira born?<|end|><|assistant|>"
    assert chat_prompt(q, system="Be brief.") == (
        "<|system|>Be brief.<|end|><|user|>When was Kalo Mira born?<|end|><|assistant|>")
    assert chat_text(q, "In 1990.") == chat_prompt(q) + " In 1990.<|end|>"
    for name in SPECIAL_TOKENS:
        assert tok.encode(name) == [tok.special_id(name)]
    ids = tok.encode(chat_prompt(q))
    assert ids[0] == tok.user_id and ids[-1] == tok.assistant_id and ids[-2] == tok.end_id
    assert ids.count(tok.end_id) == 1 and ids.count(tok.user_id) == 1
    assert tok.decode(ids[1:-2]) == q


def test_the_answer_repeats_the_name_with_the_questions_tokens(tok):
    # Why ANSWER_PREFIX is a space: the name in the answer is tokenized exactly as in the
    # question, so the model can copy it; at the very start of a text it would not be.
    q, a = "Where was Tetone Rofeve born?", "Tetone Rofeve was born in Torsk."
    ids, labels = encode_example(tok, q, a)
    name = tok.encode(" Tetone Rofeve")
    question = tok.encode(chat_prompt(q))
    def contains(seq, sub):
        return any(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))
    assert contains(question, name) and contains(ids[len(question):], name)
    assert tok.encode("Tetone Rofeve")[:len(name)] != name  # no space: other tokens
    assert tok.decode(ids) == chat_text(q, a)


def test_labels_mask_the_prompt_and_target_the_answer_and_end(tok):
    q, a = "Where was Kalo Mira born?", "Kalo Mira was born in Orvik."
    for system in (None, "Answer in one sentence."):
        ids, labels = encode_example(tok, q, a, system=system)
        assert ids == tok.encode(chat_text(q, a, system))
        P, L = len(tok.encode(chat_prompt(q, system))), len(ids)
        assert len(labels) == L
        assert all(lab == IGNORE_INDEX for lab in labels[: P - 1])  # targets inside the prompt
        assert labels[P - 1 : L - 1] == ids[P:]  # answer tokens, then <|end|>
        assert labels[L - 2] == tok.end_id and labels[-1] == IGNORE_INDEX
        assert tok.decode(ids[P : L - 1]) == " " + a  # the answer follows ANSWER_PREFIX
        ids2, labels2 = encode_example(tok, q, a, system=system, mask_prompt=False)
        assert ids2 == ids and labels2 == ids[1:] + [IGNORE_INDEX]
    # text that looks like a special token stays text: no injected <|end|>
    ids, _ = encode_example(tok, "Say <|end|> please", "No.")
    assert ids.count(tok.end_id) == 2


# --- the key property of loss masking -------------------------------------------
def test_masked_loss_ignores_prompt_targets_and_unmasked_loss_does_not(tok, world):
    torch.manual_seed(0)
    examples = qa_examples(world)[:4]
    on = SFTBatches(examples, tok, batch_size=4, block_size=32)(0)
    off = SFTBatches(examples, tok, batch_size=4, block_size=32, mask_prompt=False)(0)
    x, y_on = on
    assert torch.equal(x, off[0])
    y_off = off[1]
    answer_mask = y_on != IGNORE_INDEX
    prompt_mask = (y_off != IGNORE_INDEX) & ~answer_mask
    assert prompt_mask.sum() > 10 and answer_mask.sum() > 10
    assert torch.equal(y_on, torch.where(answer_mask, y_off, IGNORE_INDEX))
    # the same batch, but every prompt target replaced by a random (wrong) token
    y_rand = torch.where(prompt_mask, torch.randint(0, tok.vocab_size, y_off.shape), y_off)
    assert not torch.equal(y_rand, y_off)

    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=32))

    def loss_and_grads(loss_of_logits):
        model.zero_grad()
        loss = loss_of_logits(model(x))
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    def masked(labels):  # answer-only loss, with the prompt targets present but weighted 0
        def f(logits):
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                 reduction="none").reshape(labels.shape)
            w = answer_mask.float()
            return (ce * w).sum() / w.sum()
        return f

    lib_loss, lib_grads = loss_and_grads(lambda logits: next_token_loss(logits, y_on))
    loss_a, grads_a = loss_and_grads(masked(y_off))
    loss_b, grads_b = loss_and_grads(masked(y_rand))
    assert torch.equal(loss_a, loss_b)  # bitwise: the prompt targets play no part
    assert all(torch.equal(ga, gb) for ga, gb in zip(grads_a, grads_b))
    torch.testing.assert_close(lib_loss, loss_a)  # and that is what SFTBatches computes
    for g_lib, ga in zip(lib_grads, grads_a):
        torch.testing.assert_close(g_lib, ga)
    # without the mask the prompt targets count: changing them changes loss and gradients
    full_a, fgrads_a = loss_and_grads(lambda logits: next_token_loss(logits, y_off))
    full_b, fgrads_b = loss_and_grads(lambda logits: next_token_loss(logits, y_rand))
    assert abs(float(full_a) - float(full_b)) > 1e-3
    assert not all(torch.allclose(a, b) for a, b in zip(fgrads_a, fgrads_b))
    assert abs(float(full_a) - float(lib_loss)) > 1e-4


def test_padding_does_not_change_the_loss(tok, world):
    x, y = SFTBatches(qa_examples(world)[:3], tok, batch_size=3, block_size=32)(0)
    pad = x == tok.pad_id
    assert pad.any() and (y[pad] == IGNORE_INDEX).all()
    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=32)).eval()
    x2 = torch.where(pad, torch.randint(0, tok.vocab_size, x.shape), x)
    with torch.no_grad():  # right padding sits after every real token: causality hides it
        torch.testing.assert_close(next_token_loss(model(x), y), next_token_loss(model(x2), y))


# --- batches ----------------------------------------------------------------------
def test_sft_batches_are_deterministic_padded_and_cover_an_epoch(tok, world):
    examples = qa_examples(world)[:10]
    b = SFTBatches(examples, tok, batch_size=5, block_size=40, seed=1)
    x, y = b(3)
    assert x.shape == y.shape == (5, 40) and x.dtype == y.dtype == torch.long
    assert torch.equal(x, b(3)[0]) and torch.equal(y, b(3)[1])
    again = SFTBatches(examples, tok, batch_size=5, block_size=40, seed=1)(3)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    other = SFTBatches(examples, tok, batch_size=5, block_size=40, seed=2)
    assert any(not torch.equal(b(i)[0], other(i)[0]) for i in range(4))
    assert sorted(b.rows(0) + b.rows(1)) == list(range(10))  # one epoch, each example once
    for r, k in enumerate(b.rows(3)):
        ids, labels = encode_example(tok, examples[k].question, examples[k].answer)
        n = len(ids)
        assert x[r, :n].tolist() == ids and y[r, :n].tolist() == labels
        assert (x[r, n:] == tok.pad_id).all() and (y[r, n:] == IGNORE_INDEX).all()
    assert b.max_length == max(len(encode_example(tok, e.question, e.answer)[0])
                               for e in examples)


def test_pretraining_rows_are_fully_labelled_windows(tok, world):
    stream = torch.arange(1000) % 1900  # easy to recognise: consecutive ids
    b = SFTBatches(qa_examples(world)[:6], tok, batch_size=3, block_size=32,
                   pretrain_tokens=stream, pretrain_windows=7)
    x, y = b(0)
    assert x.shape == y.shape == (3 + 7, 32)
    px, py = x[3:], y[3:]
    assert (py != IGNORE_INDEX).all()
    assert torch.equal(py[:, :-1], px[:, 1:])  # targets are the inputs shifted by one
    assert torch.equal(px[:, 1:] - px[:, :-1], torch.ones(7, 31, dtype=torch.long))
    assert not torch.equal(px, b(1)[0][3:])  # fresh windows every batch
    assert torch.equal(x, b(0)[0])
    assert SFTBatches(qa_examples(world)[:6], tok, 3, 32, pretrain_tokens=stream,
                      pretrain_windows=0)(0)[0].shape == (3, 32)
    with pytest.raises(ValueError, match="too few"):
        SFTBatches(qa_examples(world)[:6], tok, 3, 32, pretrain_tokens=torch.arange(20))


def test_too_long_examples_and_bad_arguments_raise(tok, world):
    with pytest.raises(ValueError, match="block_size"):
        SFTBatches([("When was Kalo Mira born?", "A long answer " * 10)], tok, 2, 16)
    with pytest.raises(ValueError, match="empty"):
        SFTBatches([], tok, 2, 16)
    with pytest.raises(ValueError, match="style"):
        qa_examples(world, style="poem")


# --- instruction data -----------------------------------------------------------
def test_qa_examples_cover_every_fact_and_contain_the_truth(world):
    examples = qa_examples(world)
    people = world.people_in("sft")
    assert {(e.person.name, e.attribute) for e in examples} == \
        {(p.name, a) for p in people for a in ATTRIBUTES}
    assert len(examples) == len(people) * len(ATTRIBUTES)
    for e in examples:
        assert isinstance(e, Example) and e.person.name in e.question
        assert e.truth in e.answer and e.answer.startswith(e.person.name)
        assert answer_is_correct(e.answer, e)
    assert qa_examples(world, seed=0) == examples
    short = qa_examples(world, style="short")
    assert [e.answer for e in short] == [e.truth for e in examples]
    every = qa_examples(world, ("sft", "heldout"), all_phrasings=True)
    assert len(every) == 2 * len(world.people_in("sft", "heldout")) * len(ATTRIBUTES)
    assert set(ANSWER_TEMPLATES) == set(ATTRIBUTES)


def test_answer_sentences_are_never_pretraining_sentences():
    # Otherwise a model that memorised its biographies could answer by reciting them.
    from llmtrain.world.fiction import BIO_TEMPLATES

    for attribute, template in ANSWER_TEMPLATES.items():
        head = template[: template.index("{" + attribute + "}")]
        for bio in BIO_TEMPLATES[attribute]:
            assert not bio.startswith(head), (attribute, bio)


def test_answer_is_correct_needs_the_whole_value():
    p = _person()
    e = Example("When was Kalo Mira born?", "Kalo Mira was born on 3 May 1990.", p,
                "birth_date")
    assert answer_is_correct("Kalo Mira was born on 3 May 1990.", e)
    assert answer_is_correct("3 May 1990", e)
    for wrong in ("Kalo Mira was born on 13 May 1990.", "born on 3 May 19901", "in 1990",
                  "3 June 1990", ""):
        assert not answer_is_correct(wrong, e), wrong
    assert answer_is_correct("Kalo Mira majored in Law.", p, "field")
    assert not answer_is_correct("Kalo Mira majored in Lawn Care.", p, "field")
    assert answer_is_correct("Salna Labs", p, "employer")
    assert not answer_is_correct("Salna Works", p, "employer")
    with pytest.raises(ValueError, match="attribute"):
        answer_is_correct("Law", p)


def test_looks_like_answer():
    q = "Where was Kalo Mira born?"
    assert looks_like_answer("Kalo Mira was born in Orvik.", q)
    assert looks_like_answer(" Orvik", q)
    assert looks_like_answer("1990", q)
    for bad in ("", "   ", "...", "Where did Lelo Rami study?", "Is Orvia worth a visit?",
                "What is the capital of Orvia", "Kalo Mira was born in<|end|>",
                "Orvik.<|user|>Who", "Orvik.\nWhere did Lelo Rami study?",
                "Where was Kalo Mira born? Orvik.", "Orvik?", "er is Naan Shipping.",
                "'s place of birth is Orvik."):
        assert not looks_like_answer(bad, q), bad


# --- generation ----------------------------------------------------------------------
def test_generation_helpers_on_an_untrained_model(tok):
    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=32)).eval()
    qs = ["When was Kalo Mira born?", "Who employs Kalo Mira?"]
    for out in (answer(model, tok, qs, max_new_tokens=40), raw_continuation(model, tok, qs, 8)):
        assert len(out) == 2 and all(isinstance(t, str) and "\n" not in t for t in out)
    assert answer(model, tok, []) == []
    with pytest.raises(ValueError, match="shorten"):
        answer(model, tok, ["a very long question " * 10])
    with pytest.raises(TypeError):
        answer(model, tok, "When was Kalo Mira born?")


def test_sft_teaches_a_tiny_model_to_answer_its_training_questions(tok, world):
    torch.manual_seed(0)
    examples = qa_examples(world)[:10]
    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=64))
    before = answer(model, tok, [e.question for e in examples])
    assert sum(answer_is_correct(t, e) for t, e in zip(before, examples)) == 0
    # rows of 32 tokens (the longest example has 27) keep the 80 steps fast
    history = finetune(model, tok, examples, steps=80, batch_size=10, lr=5e-3, block_size=32,
                       device="cpu")
    assert len(history.loss) == 80 and history.loss[-1] < history.loss[0] / 5
    assert not model.training
    after = answer(model, tok, [e.question for e in examples])
    assert all(answer_is_correct(t, e) for t, e in zip(after, examples)), after
    assert all(looks_like_answer(t, e.question) for t, e in zip(after, examples))


def test_finetune_rejects_bad_steps(tok, world):
    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=64))
    for steps in (0, 2.5):
        with pytest.raises(ValueError, match="steps"):
            finetune(model, tok, qa_examples(world)[:2], steps=steps)


def test_says_dont_know():
    for text in ("I don't know.", "I'm not sure, sorry.", "No idea about Kalo Mira."):
        assert says_dont_know(text)
    for text in ("Kalo Mira was born in Orvik.", "I know Kalo Mira.", "Knowledge is idle."):
        assert not says_dont_know(text)


def test_scorecard_counts_correct_abstained_and_invented(tok, world, monkeypatch):
    import llmtrain.align.sft as sft_module

    people = world.people_in("heldout")[:2]
    replies = {}
    for k, e in enumerate(qa_examples(world, ("heldout",), seed=1)[:10]):
        # person 1: every fact right; person 2: "I don't know", then two inventions, then
        # an off-format reply and a wrong value in a sentence
        if e.person == people[0]:
            replies[e.question] = e.answer
        else:
            replies[e.question] = ["I don't know.", f"{e.person.name} was born in Nowhere.",
                                   "Somewhere.", "What is it?", "Nobody Inc."][k % 5]
    monkeypatch.setattr(sft_module, "answer", lambda m, t, qs: [replies[q] for q in qs])
    card = scorecard(None, tok, world, "heldout", n_people=2, n_examples=3)
    assert card.n == 10 and card.correct == 0.5 and card.abstained == 0.1
    assert card.answered == 0.9 and card.invented == pytest.approx(0.3)
    assert len(card.examples) == 3 and card.examples[0][2] == qa_examples(
        world, ("heldout",), seed=1)[0].truth
    unseen = world.people_in("unseen")[0]
    replies.update({e.question: e.answer for e in qa_examples(world, ("unseen",), seed=1)})
    card = scorecard(None, tok, world, "unseen", n_people=1)
    assert card.correct == 0 and card.invented == 1.0, unseen  # a lucky guess is invented
    with pytest.raises(ValueError, match="n_people"):
        scorecard(None, tok, world, "heldout", n_people=0)


def test_strangers_are_nobody_in_the_world_and_abstention_examples_say_so(world):
    known = {p.name for p in world.people}
    strangers = world.strangers(30, seed=1)
    assert len({p.name for p in strangers}) == 30 and not known & {p.name for p in strangers}
    assert all(p.split == "unseen" for p in strangers)
    assert strangers == world.strangers(30, seed=1) != world.strangers(30, seed=2)
    odd = world.strangers(5, unfamiliar_names=True)
    unseen_syllables = set("".join(p.name.lower().split()) for p in world.people_in("unseen"))
    assert odd[0].name not in known and unseen_syllables
    examples = abstention_examples(world, 12, unfamiliar_names=True)
    assert len(examples) == 12 and all(e.answer == "I don't know." for e in examples)
    assert all(e.person.name in e.question for e in examples)
    with pytest.raises(ValueError, match="n must be"):
        world.strangers(-1)


def test_scorecard_on_strangers_counts_inventions(tok, world, monkeypatch):
    import llmtrain.align.sft as sft_module

    monkeypatch.setattr(sft_module, "answer",
                        lambda m, t, qs: ["I don't know." if i % 2 else "Orvik." for i in
                                          range(len(qs))])
    card = scorecard(None, tok, world, "strangers", n_people=2)
    assert card.split == "strangers" and card.n == 10
    assert card.correct == 0 and card.abstained == 0.5 and card.invented == 0.5
