"""Chapter 14's library: the addition task, its two answer formats, training and scoring."""

from __future__ import annotations

import random

import pytest
import torch

from llmtrain.align.reasoning import (
    FORMATS,
    AdditionBatches,
    CharTokenizer,
    CoTConfig,
    Problem,
    accuracy,
    column_steps,
    digit_accuracy,
    final_answer,
    first_wrong_step,
    is_correct,
    make_problems,
    new_model,
    sequence_length,
    solve,
    split_problems,
    target,
    train_adder,
)
from llmtrain.core.losses import IGNORE_INDEX
from llmtrain.viz import cotviz

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the task, by hand ----------------------------------------------------------------
def test_prompt_answer_and_steps_of_a_worked_example():
    p = Problem(472, 389, 3)
    assert p.prompt == "472+389="
    assert p.answer == "0861"
    assert column_steps(p) == ["2+9+0=11", "7+8+1=16", "4+3+1=08"]
    assert target(p, "answer") == "0861"
    assert target(p, "steps") == "2+9+0=11,7+8+1=16,4+3+1=08;0861"
    assert p.carries == 2
    assert Problem(999, 1, 3).carries == 3 and Problem(123, 456, 3).carries == 0
    assert Problem(5, 7, 4).prompt == "0005+0007=" and Problem(5, 7, 4).answer == "00012"


def test_the_steps_always_spell_the_sum():
    rng = random.Random(1)
    for _ in range(300):
        digits = rng.randint(1, 6)
        p = Problem(rng.randrange(10**digits), rng.randrange(10**digits), digits)
        steps = column_steps(p)
        # the column digits, read from the highest column down, after the last carry
        rebuilt = steps[-1][-2] + "".join(s[-1] for s in reversed(steps))
        assert int(rebuilt) == p.a + p.b and rebuilt == p.answer
        assert all(len(s) == 8 for s in steps)
        assert final_answer(target(p, "steps")) == final_answer(target(p, "answer")) == p.answer


def test_reading_and_checking_completions():
    p = Problem(472, 389, 3)
    assert final_answer("2+9+0=11,7+8+1=16,4+3+1=08;0861") == "0861"
    assert final_answer(" 0861") == "0861"
    assert is_correct(p, "0861") and is_correct(p, target(p, "steps"))
    assert not is_correct(p, "861") and not is_correct(p, "2+9+0=11;0862")
    assert first_wrong_step(p, target(p, "steps")) is None
    assert first_wrong_step(p, "2+9+0=11,7+8+0=15,4+3+1=08;0851") == 1
    assert first_wrong_step(p, "2+9+0=11;0861") == 1  # the missing steps
    assert first_wrong_step(p, "0861") is None  # no steps written


def test_digit_accuracy_counts_each_place():
    problems = [Problem(472, 389, 3), Problem(100, 200, 3)]
    assert digit_accuracy(problems, ["0861", "0300"]) == [1.0, 1.0, 1.0, 1.0]
    assert digit_accuracy(problems, ["0961", "0309"]) == [1.0, 0.5, 1.0, 0.5]
    assert digit_accuracy(problems, ["861", "x;0300"]) == [0.5, 0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="one completion per problem"):
        digit_accuracy(problems, ["0861"])


def test_problems_are_distinct_reproducible_and_held_out():
    a = make_problems(200, 2, seed=3)
    assert a == make_problems(200, 2, seed=3) and a != make_problems(200, 2, seed=4)
    assert len({(p.a, p.b) for p in a}) == 200
    train, test = split_problems(300, 100, 2, seed=0)
    assert len(train) == 300 and len(test) == 100
    assert not {(p.a, p.b) for p in train} & {(p.a, p.b) for p in test}
    assert all(p.digits == 2 for p in train + test)
    assert len(make_problems(100, 1)) == 100  # all 1-digit problems exist


def test_bad_inputs_say_what_to_change():
    with pytest.raises(ValueError, match="from 1 to 8"):
        Problem(1, 2, 0)
    with pytest.raises(ValueError, match="at most 2 digits"):
        Problem(100, 2, 2)
    with pytest.raises(ValueError, match="only that many"):
        make_problems(101, 1)
    with pytest.raises(ValueError, match="format 'cot' is unknown"):
        target(Problem(1, 2, 1), "cot")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        CharTokenizer().encode("12 + 3")
    with pytest.raises(ValueError, match="empty"):
        AdditionBatches([], "steps", 4)
    with pytest.raises(ValueError, match="same number of digits"):
        AdditionBatches([Problem(1, 2, 1), Problem(1, 2, 2)], "steps", 4)
    with pytest.raises(ValueError, match="steps must be a positive"):
        CoTConfig(steps=0)
    with pytest.raises(ValueError, match="must not repeat"):
        CharTokenizer("0120")


# --- tokens and batches -------------------------------------------------------------------
def test_char_tokenizer_round_trip_and_specials():
    tok = CharTokenizer()
    text = "0472+0389=2+9+0=11;0861"
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) == len(text)
    assert tok.vocab_size == 16 and {tok.pad_id, tok.eot_id} == {14, 15}
    assert tok.decode([1, tok.eot_id, 2, tok.pad_id]) == "12"
    assert tok.encode_batch(["1", "23"]) == [[1], [2, 3]]


@pytest.mark.parametrize("fmt", FORMATS)
def test_batches_learn_only_what_comes_after_the_equals_sign(fmt):
    tok = CharTokenizer()
    problems = make_problems(10, 3, seed=0)
    batches = AdditionBatches(problems, fmt, batch_size=4)
    x, y = batches(0)
    T = sequence_length(3, fmt) - 1
    assert x.shape == y.shape == (4, T) and batches.block_size == sequence_length(3, fmt)
    prompt_len = len(problems[0].prompt)
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        assert row_y[: prompt_len - 1] == [IGNORE_INDEX] * (prompt_len - 1)
        written = tok.decode(row_y[prompt_len - 1 :])
        prompt = tok.decode(row_x[:prompt_len])
        p = next(q for q in problems if q.prompt == prompt)
        assert written == target(p, fmt) and row_y[-1] == tok.eot_id
        assert row_x[prompt_len:] == row_y[prompt_len - 1 : -1]  # y is x shifted by one


def test_every_problem_once_per_epoch_and_batches_are_reproducible():
    problems = make_problems(12, 2, seed=0)
    batches = AdditionBatches(problems, "answer", batch_size=4, seed=5)
    epoch = torch.cat([batches(i)[0] for i in range(3)])
    assert len({tuple(r) for r in epoch.tolist()}) == 12
    assert torch.equal(batches(7)[0], AdditionBatches(problems, "answer", 4, seed=5)(7)[0])
    assert not torch.equal(batches(3)[0], batches(0)[0])  # a new order in the next epoch


# --- models ---------------------------------------------------------------------------------
def test_a_fresh_model_has_room_for_exactly_one_problem():
    m = new_model(4, "steps", CoTConfig())
    assert m.config.block_size == len("0000+0000=") + len(target(Problem(0, 0, 4), "steps")) + 1
    assert m.config.vocab_size == CharTokenizer().vocab_size
    completions = solve(m, make_problems(3, 4))
    assert len(completions) == 3 and all(isinstance(c, str) for c in completions)
    assert 0.0 <= accuracy(m, make_problems(20, 4)) <= 1.0


@pytest.mark.slow
def test_written_out_steps_beat_final_answers_on_a_tiny_model():
    """The chapter's effect at 3 digits: same model, problems and steps, only the format differs."""
    train, test = split_problems(300, 200, 3, seed=0)
    config = CoTConfig(steps=200, batch_size=32)
    acc = {}
    for fmt in FORMATS:
        model, history = train_adder(train, fmt, config)
        assert history.steps[-1] == 200 and history.loss[-1] < history.loss[0]
        acc[fmt] = accuracy(model, test)
    assert acc["steps"] > 0.5 and acc["steps"] > acc["answer"] + 0.4, acc


def test_a_reversed_answer_is_read_back_highest_digit_first():
    p = Problem(472, 389, 3)
    assert target(p, "reversed") == "=1680"
    assert final_answer("=1680") == "0861" and is_correct(p, "=1680")
    assert not is_correct(p, "=0861") and not is_correct(p, "1680")
    assert final_answer("2+9+0=11;0861") == "0861" == final_answer("0861")
    assert digit_accuracy([p], ["=1680"]) == [1.0, 1.0, 1.0, 1.0]
    assert sequence_length(3, "reversed") == len("472+389=") + 1 + len("=1680")


def test_train_adder_records_held_out_accuracy():
    train, test = split_problems(50, 20, 1, seed=0)
    _, history = train_adder(train, "answer", CoTConfig(steps=20, batch_size=16), test=test,
                             eval_every=10)
    assert [e["step"] for e in history.evals] == [10, 20]
    assert all(0 <= e["accuracy"] <= 1 for e in history.evals)


# --- pictures and the playground -------------------------------------------------------------
def test_plots_have_titles_and_labels():
    import matplotlib.pyplot as plt

    train, test = split_problems(40, 20, 1, seed=0)
    _, h = train_adder(train, "answer", CoTConfig(steps=10, batch_size=8))
    ax = cotviz.loss_plot({"answer": h, "steps": h})
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    ax = cotviz.digit_plot(test, {"answer": [p.answer for p in test], "steps": ["0"] * 20})
    heights = [b.get_height() for b in ax.patches]
    assert heights[:2] == [1.0, 1.0] and heights[2:] == [0.0, 0.0]
    plt.close("all")


def test_playground_trains_both_formats_and_shows_the_result():
    config = CoTConfig(steps=20, batch_size=8)
    pg = cotviz.cot_playground(config, digits=1, n_train=100, n_test=20)
    assert pg.error is None and pg.calls == 1
    assert "final answer only" in pg.last_text and "steps written out" in pg.last_text
    pg.controls["digits"].value = 2
    pg.controls["steps"].value = 50
    pg.button.click()
    assert pg.error is None and pg.calls == 2 and pg.last_values["digits"] == 2
    assert "2-digit sums" in pg.last_result[0].axes[0].get_title()
    cached = cotviz.compare_formats(2, 100, 20, CoTConfig(steps=50, batch_size=8))
    assert f"{cached['steps'].accuracy:6.1%}" in pg.last_text  # the shown numbers are the run's
