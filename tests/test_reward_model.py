from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from llmtrain.align.preferences import (
    PreferencePair,
    answer_variants,
    gold_scores,
    is_test_person,
    make_pairs,
    preference_pairs,
    sample_answers,
    split_by_person,
)
from llmtrain.align.reward_model import (
    EncodedPairs,
    PairBatches,
    RewardModel,
    calibration,
    encode_pairs,
    expected_calibration_error,
    fit_head,
    last_token_features,
    pair_accuracy,
    pair_features,
    score_pairs,
    score_responses,
    train_head_only,
    train_reward_model,
)
from llmtrain.align.sft import qa_examples
from llmtrain.core.chat import chat_text
from llmtrain.core.losses import bradley_terry_loss, preference_probability
from llmtrain.core.model import GPT, preset
from llmtrain.world.answers import ANSWER_TEMPLATES, answer_text
from llmtrain.world.fiction import ATTRIBUTES, World, person_values
from llmtrain.world.judge import bayes_accuracy, judge_category, judge_score, label_pair

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return World.generate(seed=3, n_people=20, n_unseen=2)


@pytest.fixture
def gpt():
    torch.manual_seed(0)
    return GPT(preset("nano", vocab_size=61, block_size=24)).eval()


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# --- the Bradley-Terry loss -------------------------------------------------------
def test_bradley_terry_loss_matches_the_formula():
    chosen = torch.tensor([1.0, 0.0, 2.0])
    rejected = torch.tensor([0.0, 0.0, -1.0])
    by_hand = (math.log(1 + math.exp(-1)) + math.log(2) + math.log(1 + math.exp(-3))) / 3
    assert float(bradley_terry_loss(chosen, rejected)) == pytest.approx(by_hand, rel=1e-6)
    # the same as binary cross-entropy with label 1 on the margin
    ref = F.binary_cross_entropy_with_logits(chosen - rejected, torch.ones(3))
    torch.testing.assert_close(bradley_terry_loss(chosen, rejected), ref)
    assert float(bradley_terry_loss(torch.zeros(5), torch.zeros(5))) == pytest.approx(math.log(2))


def test_bradley_terry_loss_falls_with_the_margin_and_is_stable():
    margins = [-3.0, -1.0, 0.0, 0.5, 2.0, 10.0]
    values = [float(bradley_terry_loss(torch.tensor([m]), torch.zeros(1))) for m in margins]
    assert all(a > b for a, b in zip(values, values[1:]))
    # huge margins: no inf or nan (log(sigmoid(x)) would overflow)
    assert float(bradley_terry_loss(torch.tensor([1000.0]), torch.zeros(1))) == pytest.approx(0)
    assert float(bradley_terry_loss(torch.tensor([-1000.0]), torch.zeros(1))) == pytest.approx(
        1000.0)


def test_bradley_terry_gradient_pushes_chosen_up_and_rejected_down():
    chosen = torch.tensor([0.3, -1.0], requires_grad=True)
    rejected = torch.tensor([0.1, 2.0], requires_grad=True)
    bradley_terry_loss(chosen, rejected).backward()
    assert bool((chosen.grad < 0).all()) and bool((rejected.grad > 0).all())
    # d/dr_chosen of -log sigmoid(m) / B is -(1 - sigmoid(m)) / B
    expected = -(1 - torch.sigmoid(torch.tensor([0.2, -3.0]))) / 2
    torch.testing.assert_close(chosen.grad, expected)
    torch.testing.assert_close(rejected.grad, -expected)


def test_bradley_terry_loss_shape_checks():
    with pytest.raises(ValueError, match="same shape"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="squeeze"):
        bradley_terry_loss(torch.zeros(3, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="B >= 1"):
        bradley_terry_loss(torch.zeros(0), torch.zeros(0))
    assert preference_probability(0.0) == 0.5
    assert preference_probability(1.0) == pytest.approx(0.7311, abs=1e-4)
    assert preference_probability(-800.0) == pytest.approx(0.0)
    torch.testing.assert_close(preference_probability(torch.tensor([2.0, -2.0])).sum(),
                               torch.tensor(1.0))


# --- the model ----------------------------------------------------------------------
def test_hidden_states_are_what_the_output_layer_reads(gpt):
    x = torch.randint(0, 61, (2, 9))
    torch.testing.assert_close(gpt.lm_head(gpt.hidden_states(x)), gpt(x))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1, 1], [1] * 9])
    torch.testing.assert_close(gpt.lm_head(gpt.hidden_states(x, attention_mask=mask)),
                               gpt(x, attention_mask=mask))


def test_reward_is_read_at_the_last_real_token(gpt):
    rm = RewardModel.from_gpt(gpt, init_std=1.0).eval().requires_grad_(False)
    ids = torch.randint(1, 61, (3, 12))
    last = torch.tensor([4, 7, 11])
    r = rm(ids, last_index=last)
    assert r.shape == (3,)
    after = ids.clone()  # change everything after each row's last token: no effect
    after[0, 5:] = 0
    after[1, 8:] = (after[1, 8:] + 7) % 61
    torch.testing.assert_close(rm(after, last_index=last), r)
    before = ids.clone()  # change one token before row 0's last token: its reward moves
    before[0, 2] = (before[0, 2] + 1) % 61
    r2 = rm(before, last_index=last)
    assert abs(float(r2[0] - r[0])) > 1e-4
    torch.testing.assert_close(r2[1:], r[1:])
    # the same reward from an attention mask (right padding) and from the row alone
    mask = (torch.arange(12)[None] <= last[:, None]).long()
    torch.testing.assert_close(rm(ids, attention_mask=mask), r)
    torch.testing.assert_close(rm(ids[:1, :5]), r[:1])
    # left padding works too when the mask says where the pads are
    left = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids[:1, :5]], dim=1)
    left_mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    torch.testing.assert_close(rm(left, attention_mask=left_mask), r[:1])


def test_reward_model_input_checks(gpt):
    rm = RewardModel(gpt)
    ids = torch.randint(0, 61, (2, 6))
    with pytest.raises(ValueError, match="last_index must have shape"):
        rm(ids, last_index=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"in \[0, 5\]"):
        rm(ids, last_index=torch.tensor([1, 6]))
    with pytest.raises(TypeError, match="GPT"):
        RewardModel(torch.nn.Linear(3, 3))


def test_from_gpt_copies_the_backbone(gpt):
    before = {k: v.clone() for k, v in gpt.state_dict().items()}
    rm = RewardModel.from_gpt(gpt)
    ours = {p.data_ptr() for p in gpt.parameters()}
    assert not ours & {p.data_ptr() for p in rm.parameters()}
    assert rm.backbone.lm_head.weight is rm.backbone.wte.weight  # tying survives the copy
    assert rm.config == gpt.config
    assert float(rm.head.bias.detach()) == 0.0 and float(rm.head.weight.detach().std()) < 0.04
    opt = torch.optim.SGD(rm.parameters(), lr=1.0)
    ids = torch.randint(0, 61, (4, 8))
    rewards = rm(ids)
    assert float(rewards.detach().abs().max()) < 1.0  # a small head: rewards start near 0
    rewards.sum().backward()
    opt.step()
    for k, v in gpt.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} of the original GPT changed"
    assert not torch.equal(rm.backbone.wte.weight, gpt.wte.weight)


# --- the hidden judge and noisy labels -----------------------------------------------------
def test_label_pair_frequencies_follow_bradley_terry():
    rng = random.Random(0)
    n = 4000
    for a, b, temperature in [(0.0, 0.0, 1.0), (0.3, 0.0, 0.5), (0.0, 1.0, 0.5), (1.0, 0.8, 0.2)]:
        freq = sum(label_pair(a, b, rng, temperature) for _ in range(n)) / n
        # 4 standard errors of a share of 4000 draws is at most 0.032
        assert freq == pytest.approx(_sigmoid((a - b) / temperature), abs=0.032)
    assert all(label_pair(1.0, 0.9, rng, temperature=0) == 1 for _ in range(50))
    with pytest.raises(ValueError, match="temperature"):
        label_pair(1.0, 0.0, rng, temperature=-1)


def test_bayes_accuracy_hand_values_and_simulation():
    assert bayes_accuracy([0.3, 0.7], [0.3, 0.7], 0.5) == pytest.approx(0.5)
    assert bayes_accuracy([100.0], [0.0], 1.0) == pytest.approx(1.0)
    assert bayes_accuracy([1.0, 0.0], [0.0, 1.0], 1.0) == pytest.approx(_sigmoid(1.0))
    assert bayes_accuracy([1.0, 0.5], [0.0, 0.5], 0) == pytest.approx(0.75)
    # the oracle that always picks the higher gold score reaches the ceiling on drawn labels
    rng = random.Random(1)
    a = [rng.uniform(-1, 1) for _ in range(4000)]
    b = [rng.uniform(-1, 1) for _ in range(4000)]
    hits = sum(label_pair(x, y, rng, 0.3) == int(x > y) for x, y in zip(a, b)) / 4000
    assert hits == pytest.approx(bayes_accuracy(a, b, 0.3), abs=0.025)


def test_judge_orders_kinds_of_answers(world):
    person = world.people_in("sft")[0]
    for attribute in ATTRIBUTES:
        question = world.questions(person, attribute)[0]
        correct = answer_text(person, attribute)
        others = sorted({o.fact(attribute) for o in world.people} - {person.fact(attribute)})
        values = {**person_values(person), attribute: others[0]}
        wrong = ANSWER_TEMPLATES[attribute].format(**values)
        abstain = "I don't know."
        off = [question, f"{correct}\n{question}", "<|user|>" + correct, "  ...  "]
        scores = [judge_score(t, person, attribute) for t in (correct, abstain, wrong)]
        assert scores[0] > scores[1] > scores[2] > max(judge_score(t, person, attribute)
                                                       for t in off)
        assert judge_category(wrong, person, attribute) == "wrong"
        assert all(judge_category(t, person, attribute) == "off_format" for t in off)
        rambling = correct + " I hope this helps, and do ask me about anything else."
        assert judge_score(correct, person, attribute) > judge_score(rambling, person, attribute)
        assert judge_score(person.fact(attribute), person, attribute) > scores[1]
    # someone no text describes: saying "I don't know" is the honest, best answer
    stranger = world.people_in("unseen")[0]
    lucky = answer_text(stranger, "field")
    assert judge_category(lucky, stranger, "field") == "wrong"
    assert judge_score("I don't know.", stranger, "field") > judge_score(lucky, stranger, "field")


def test_judge_kinds_never_overlap_and_ties_are_rare(world):
    rng = random.Random(0)
    by_kind: dict[str, list[float]] = {}
    ties = total = 0
    for ex in qa_examples(world, ("sft", "heldout")):
        scores = []
        for text in answer_variants(ex, world, rng).values():
            s = judge_score(text, ex.person, ex.attribute)
            by_kind.setdefault(judge_category(text, ex.person, ex.attribute), []).append(s)
            scores.append(s)
        ties += sum(a == b for i, a in enumerate(scores) for b in scores[i + 1:])
        total += len(scores) * (len(scores) - 1) // 2
    order = ["correct", "abstain", "wrong", "off_format"]
    for better, worse in zip(order, order[1:]):
        assert min(by_kind[better]) > max(by_kind[worse]), (better, worse)
    assert ties / total < 0.02


def test_make_pairs_is_reproducible_and_labels_follow_the_judge(world):
    exs = qa_examples(world, ("sft",))[:30]
    fn = lambda ex, rng: list(answer_variants(ex, world, rng).values())
    pairs = make_pairs(exs, fn, temperature=0.2, seed=4, pairs_per_example=2)
    assert len(pairs) == 60 and pairs == make_pairs(exs, fn, temperature=0.2, seed=4,
                                                    pairs_per_example=2)
    p = pairs[0]
    assert p.margin_gold == pytest.approx(judge_score(p.chosen, p.person, p.attribute)
                                          - judge_score(p.rejected, p.person, p.attribute))
    exact = make_pairs(exs, fn, temperature=0, seed=4)
    assert all(q.margin_gold >= 0 for q in exact)  # a noiseless labeller never picks the worse
    with pytest.raises(ValueError, match="at least 2"):
        make_pairs(exs[:1], lambda ex, rng: ["same", "same"])


# --- encoding and batches ---------------------------------------------------------------
def test_encode_pairs_pads_right_and_points_at_the_end_token(tok):
    pairs = [PreferencePair("Where was Kalo Mira born?", "Kalo Mira was born in Orvik.",
                            "Orvik?", 1.0),
             PreferencePair("Who employs Kalo Mira?", "Salna Labs.",
                            "I don't know who employs Kalo Mira, sorry.", 0.2)]
    enc = encode_pairs(tok, pairs, block_size=64)
    assert enc.chosen_ids.shape == enc.rejected_ids.shape and enc.num_pairs == 2
    for ids, last, texts in [(enc.chosen_ids, enc.chosen_last, [p.chosen for p in pairs]),
                             (enc.rejected_ids, enc.rejected_last, [p.rejected for p in pairs])]:
        for row, k, (pair, text) in zip(ids, last.tolist(), zip(pairs, texts)):
            assert row[: k + 1].tolist() == tok.encode(chat_text(pair.prompt, text))
            assert int(row[k]) == tok.end_id
            assert bool((row[k + 1:] == tok.pad_id).all())
    assert enc.subset([1]).chosen_ids.shape == (1, enc.chosen_ids.shape[1])
    with pytest.raises(ValueError, match="block_size"):
        encode_pairs(tok, pairs, block_size=10)


def test_pair_batches_cover_every_pair_once_per_epoch():
    n, width = 10, 7
    ids = torch.arange(n)[:, None].repeat(1, width)
    enc = EncodedPairs(ids, torch.full((n,), 4), ids + 100, torch.full((n,), 5))
    batches = PairBatches(enc, batch_size=5, seed=1)
    x, last = batches(0)
    assert x.shape == (10, 6)  # 5 chosen rows, then their 5 rejected rows, cut to 6 columns
    torch.testing.assert_close(x[5:, 0], x[:5, 0] + 100)
    assert last.tolist() == [4] * 5 + [5] * 5
    epoch = sorted(batches.rows(0) + batches.rows(1))
    assert epoch == list(range(n))
    assert torch.equal(PairBatches(enc, 5, seed=1)(3)[0], batches(3)[0])


def test_calibration_table_hand_values():
    assert calibration(torch.zeros(4), [1, 0, 1, 1], bins=2) == [(0.5, 0.75, 4)]
    table = calibration([-10.0, 10.0, 10.0], [0, 1, 1], bins=10)
    assert [n for _, _, n in table] == [1, 2]
    assert table[0][1] == 0.0 and table[1][1] == 1.0
    assert expected_calibration_error(table) == pytest.approx(_sigmoid(-10.0), rel=1e-6)
    with pytest.raises(ValueError, match="0 or 1"):
        calibration([0.0], [2])


# --- end to end ---------------------------------------------------------------------------
def test_reward_model_learns_correct_over_wrong_answers(tok, world):
    """Chosen = the true answer sentence, rejected = the same sentence with another person's
    value; held-out pairs use wrong values never shown for that fact."""
    people = world.people_in("sft")[:4]
    exs = [e for e in qa_examples(world, ("sft",), all_phrasings=True) if e.person in people]
    train, test = [], []
    for ex in exs:  # 4 people x 5 facts x 2 phrasings x 5 wrong values = 200 pairs
        p, a = ex.person, ex.attribute
        others = sorted({o.fact(a) for o in world.people} - {p.fact(a)})
        random.Random(f"{p.name}/{a}").shuffle(others)  # the same for both phrasings
        for k, value in enumerate(others[:5]):
            wrong = ANSWER_TEMPLATES[a].format(**{**person_values(p), a: value})
            pair = PreferencePair(ex.question, ex.answer, wrong, 1.0, p, a)
            (test if k == 4 else train).append(pair)
    assert len(train) == 160 and len(test) == 40
    train_enc, test_enc = encode_pairs(tok, train, 64), encode_pairs(tok, test, 64)
    torch.manual_seed(0)
    rm = RewardModel(GPT(preset("nano", vocab_size=tok.vocab_size, block_size=64)))
    history = train_reward_model(rm, train_enc, steps=100, batch_size=16, lr=3e-3, seed=0,
                                 device="cpu")
    assert len(history.loss) == 100
    assert history.loss[0] == pytest.approx(math.log(2), abs=0.1)  # a small head starts at ln 2
    assert sum(history.loss[-10:]) / 10 < 0.4
    assert pair_accuracy(rm, test_enc) > 0.8
    q = exs[0].question
    r = score_responses(rm, tok, [q, q], [exs[0].answer, test[0].rejected])
    assert r.shape == (2,) and not rm.training


# --- preference data for the course ---------------------------------------------------
def test_different_kinds_never_pairs_two_answers_of_one_kind(world):
    examples = qa_examples(world, ("sft", "unseen"))[:20]

    def variants(e, rng):
        return list(answer_variants(e, world, rng).values())

    plain = make_pairs(examples, variants, seed=1, pairs_per_example=3)
    mixed = make_pairs(examples, variants, seed=1, pairs_per_example=3, different_kinds=True)
    kind = lambda p, text: judge_category(text, p.person, p.attribute)  # noqa: E731
    assert all(kind(p, p.chosen) != kind(p, p.rejected) for p in mixed)
    assert any(kind(p, p.chosen) == kind(p, p.rejected) for p in plain)
    # one kind only: falls back to any two answers
    same = make_pairs(examples[:2], lambda e, rng: [e.answer, e.answer + " Yes."],
                      different_kinds=True)
    assert len(same) == 2


def test_test_people_are_a_stable_share_and_split_keeps_people_together(world):
    names = [f"Person {i}" for i in range(2000)]
    share = sum(is_test_person(n) for n in names) / len(names)
    assert 0.17 < share < 0.23
    assert [is_test_person(n) for n in names[:50]] == [is_test_person(n) for n in names[:50]]
    assert [is_test_person(n, seed=1) for n in names] != [is_test_person(n) for n in names]
    with pytest.raises(ValueError, match="test_share"):
        is_test_person("x", test_share=1.0)
    examples = qa_examples(world, ("sft", "heldout", "unseen"))
    pairs = make_pairs(examples, lambda e, rng: list(answer_variants(e, world, rng).values()))
    train, test = split_by_person(pairs, test_share=0.3)
    assert len(train) + len(test) == len(pairs) and train and test
    assert not {p.person.name for p in train} & {p.person.name for p in test}
    with pytest.raises(ValueError, match="person"):
        split_by_person([PreferencePair("q", "a", "b", 1.0)])


def test_preference_pairs_start_with_a_contrast_pair_per_question(tok, world):
    torch.manual_seed(0)
    model = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=64)).eval()
    examples = qa_examples(world, ("sft", "unseen"), seed=0)
    samples = sample_answers(model, tok, examples[:3], n=2, max_new_tokens=6)
    assert len(samples) == 3 and all(len(s) == 2 and all(isinstance(t, str) for t in s)
                                     for s in samples)
    keep = {world.people_in("sft")[0].name, world.people_in("unseen")[0].name}
    pairs = preference_pairs(model, tok, world, splits=("sft", "unseen"), samples_per_question=1,
                             pairs_per_question=2, people=lambda p: p.name in keep)
    n_questions = 2 * len(ATTRIBUTES)
    assert len(pairs) == 2 * n_questions
    for p in pairs[:n_questions]:  # the contrast pairs
        kinds = {judge_category(t, p.person, p.attribute) for t in (p.chosen, p.rejected)}
        assert kinds == ({"abstain", "wrong"} if p.person.split == "unseen"
                         else {"correct", "wrong"})
    chosen, rejected = gold_scores(pairs)
    assert [c - r for c, r in zip(chosen, rejected)] == pytest.approx(
        [p.margin_gold for p in pairs])
    assert pairs == preference_pairs(model, tok, world, splits=("sft", "unseen"),
                                     samples_per_question=1, pairs_per_question=2,
                                     people=lambda p: p.name in keep)
    with pytest.raises(ValueError, match="nobody"):
        preference_pairs(model, tok, world, people=lambda p: False)


def test_head_only_training_fits_the_head_and_leaves_the_backbone(tok, world):
    torch.manual_seed(0)
    gpt = GPT(preset("nano", vocab_size=tok.vocab_size, block_size=64))
    rm = RewardModel(gpt)
    examples = qa_examples(world, ("sft",))[:30]
    # correct against off-format: easy to separate from the last-token features
    pairs = [PreferencePair(e.question, e.answer, "Where?", 2.0, e.person, e.attribute)
             for e in examples]
    enc = encode_pairs(tok, pairs, 64)
    feats = last_token_features(rm, enc.chosen_ids, enc.chosen_last)
    assert feats.shape == (30, gpt.config.n_embd)
    torch.testing.assert_close(rm.head(feats).squeeze(-1),
                               rm(enc.chosen_ids, last_index=enc.chosen_last),
                               rtol=1e-4, atol=1e-5)
    before = {k: v.clone() for k, v in rm.backbone.state_dict().items()}
    before_loss = float(bradley_terry_loss(*score_pairs(rm, enc)))
    loss = train_head_only(rm, enc, steps=100)
    assert loss < before_loss / 2 and pair_accuracy(rm, enc) == 1.0
    assert all(torch.equal(v, rm.backbone.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="steps"):
        train_head_only(rm, enc, steps=0)
    chosen, rejected = pair_features(rm, enc)
    w = fit_head(chosen, rejected, steps=50)
    assert w.shape == (gpt.config.n_embd,) and ((chosen - rejected) @ w > 0).all()
    with pytest.raises(ValueError, match="shape"):
        fit_head(chosen, rejected[:3])


def test_garble_breaks_answers_without_keeping_an_abstention():
    import random

    from llmtrain.align.preferences import garble
    from llmtrain.world.answers import looks_like_answer, says_dont_know

    rng = random.Random(0)
    sentence = "Kalo Mira's place of birth is Orvik."
    outs = [garble(t, rng) for t in [sentence, "I don't know."] * 20]
    assert all(o and o not in (sentence, "I don't know.") for o in outs)
    assert not any(says_dont_know(o) for o in outs)
    assert any(not looks_like_answer(o, "Where was Kalo Mira born?") for o in outs)
