"""Distillation (chapter 12): the loss, the teacher's cached outputs, student training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmtrain.core.losses import IGNORE_INDEX, distillation_loss, next_token_loss

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the loss -------------------------------------------------------------------------
def test_distillation_loss_by_hand_on_one_position():
    s, t = [1.0, 0.0, -1.0], [2.0, 1.0, 0.0]
    T, alpha, target = 2.0, 0.25, 0
    soft = lambda z: [math.exp(v / T) / sum(math.exp(w / T) for w in z) for v in z]
    p, q = soft(t), soft(s)
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce = -math.log(math.exp(s[target]) / sum(math.exp(v) for v in s))  # student at T = 1
    expected = alpha * T**2 * kl + (1 - alpha) * ce
    got = distillation_loss(torch.tensor([s]), torch.tensor([t]), torch.tensor([target]),
                            temperature=T, alpha=alpha)
    assert float(got) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("T,alpha", [(1.0, 1.0), (2.0, 0.5), (4.0, 0.9), (0.5, 0.1)])
def test_distillation_loss_matches_torch_kl_div_and_cross_entropy(T, alpha):
    torch.manual_seed(1)
    s, t = torch.randn(3, 5, 11) * 2, torch.randn(3, 5, 11) * 2
    y = torch.randint(0, 11, (3, 5))
    kl = F.kl_div(F.log_softmax(s / T, -1).reshape(-1, 11), F.softmax(t / T, -1).reshape(-1, 11),
                  reduction="batchmean")
    ce = F.cross_entropy(s.reshape(-1, 11), y.reshape(-1))
    expected = alpha * T**2 * kl + (1 - alpha) * ce
    torch.testing.assert_close(distillation_loss(s, t, y, T, alpha), expected,
                               rtol=1e-5, atol=1e-6)


def test_alpha_zero_is_plain_cross_entropy_and_a_perfect_student_costs_nothing():
    torch.manual_seed(2)
    s, t = torch.randn(2, 4, 7), torch.randn(2, 4, 7)
    y = torch.randint(0, 7, (2, 4))
    torch.testing.assert_close(distillation_loss(s, t, y, 3.0, 0.0), next_token_loss(s, y))
    for T in (0.5, 1.0, 4.0):
        assert float(distillation_loss(t, t, None, T, 1.0)) == pytest.approx(0.0, abs=1e-6)
    # adding a constant to every logit changes no distribution, so no loss
    assert float(distillation_loss(t + 5.0, t, y, 2.0, 1.0)) == pytest.approx(0.0, abs=1e-5)


def test_ignored_positions_count_in_neither_term():
    torch.manual_seed(3)
    s, t = torch.randn(2, 6, 9), torch.randn(2, 6, 9)
    y = torch.randint(0, 9, (2, 6))
    y_pad = y.clone()
    y_pad[0, 4:] = IGNORE_INDEX
    y_pad[1, 5:] = IGNORE_INDEX
    keep = y_pad != IGNORE_INDEX
    full = distillation_loss(s, t, y_pad, 2.0, 0.5)
    subset = distillation_loss(s[keep], t[keep], y[keep], 2.0, 0.5)  # (N, V) works too
    torch.testing.assert_close(full, subset)
    changed = t.clone()
    changed[~keep] = 100.0  # the teacher's logits at padding do not matter
    torch.testing.assert_close(distillation_loss(s, changed, y_pad, 2.0, 0.5), full)
    all_pad = torch.full_like(y, IGNORE_INDEX)
    assert float(distillation_loss(s, t, all_pad, 2.0, 0.5)) == 0.0


def test_gradients_reach_the_student_only_and_t_squared_keeps_their_size():
    torch.manual_seed(4)
    t = torch.randn(8, 50, requires_grad=True)
    norms = {}
    for T in (4.0, 8.0, 16.0):
        s = torch.randn(8, 50, generator=torch.Generator().manual_seed(5)).requires_grad_()
        distillation_loss(s, t, None, T, 1.0).backward()
        norms[T] = s.grad.norm().item()
    assert t.grad is None  # the teacher is a fixed target
    # at high T the gradient of T^2 KL tends to (z_s - z_t - mean) / (V N): independent of T
    assert norms[8.0] / norms[4.0] == pytest.approx(1.0, abs=0.1)
    assert norms[16.0] / norms[8.0] == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("kwargs,match", [
    (dict(teacher=torch.zeros(2, 3, 6)), "same shape"),
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(alpha=1.5), "alpha"),
    (dict(alpha=-0.1), "alpha"),
    (dict(targets=torch.zeros(2, 4, dtype=torch.long)), "targets"),
    (dict(targets=None, alpha=0.5), "targets are needed"),
])
def test_distillation_loss_bad_inputs_say_what_to_change(kwargs, match):
    args = dict(student=torch.zeros(2, 3, 5), teacher=torch.zeros(2, 3, 5),
                targets=torch.zeros(2, 3, dtype=torch.long), temperature=2.0, alpha=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        distillation_loss(args["student"], args["teacher"], args["targets"],
                          args["temperature"], args["alpha"])


# --- the transfer set, batches and students --------------------------------------------
from llmtrain.compress import distill  # noqa: E402
from llmtrain.core.model import GPT, GPTConfig  # noqa: E402
from llmtrain.viz import distillviz  # noqa: E402


def _teacher(vocab=40, block=32, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=1, n_head=2,
                         n_embd=16)).eval()


def _stream(n=600, vocab=40):
    # a learnable stream: each token mostly follows its predecessor by +1 (mod vocab)
    g = torch.Generator().manual_seed(1)
    steps = torch.where(torch.rand(n, generator=g) < 0.8, 1, torch.randint(0, vocab, (n,),
                                                                            generator=g))
    return torch.cumsum(steps, 0) % vocab


def test_transfer_set_holds_windows_and_the_teachers_logits():
    teacher, tokens = _teacher(), _stream()
    data = distill.transfer_set(teacher, tokens, n_windows=10, block_size=16, seed=3)
    assert data.x.shape == data.y.shape == (10, 16) and len(data) == 10 and data.tokens == 160
    assert torch.equal(data.x[:, 1:], data.y[:, :-1])  # y is x shifted by one
    assert data.teacher_logits.shape == (10, 16, 40) and data.teacher_logits.dtype == torch.float16
    with torch.no_grad():
        torch.testing.assert_close(data.teacher_logits.float(), teacher(data.x),
                                   atol=1e-2, rtol=1e-2)
    assert data.cache_megabytes == pytest.approx(10 * 16 * 40 * 2 / 1e6)
    again = distill.transfer_set(teacher, tokens, n_windows=10, block_size=16, seed=3)
    assert torch.equal(again.x, data.x)  # the same seed gives the same windows
    bare = distill.transfer_set(teacher, tokens, 10, 16, with_teacher=False)
    assert bare.teacher_logits is None and bare.cache_megabytes == 0
    with pytest.raises(ValueError, match="context"):
        distill.transfer_set(teacher, tokens, 10, block_size=64)
    with pytest.raises(ValueError, match="n_windows"):
        distill.transfer_set(teacher, tokens, 0, 16)
    with pytest.raises(TypeError, match="GPT"):
        distill.teacher_logits(torch.nn.Linear(3, 3), data.x)


def test_teacher_generations_keep_the_prompt_and_follow_the_teacher():
    teacher = _teacher()
    data = distill.transfer_set(teacher, _stream(), 6, 16)
    greedy = distill.teacher_generations(teacher, data, prompt_tokens=4, temperature=0.0)
    assert greedy.x.shape == (6, 16) and greedy.source == "teacher"
    assert greedy.teacher_logits is None
    assert torch.equal(greedy.x[:, :4], data.x[:, :4])
    assert torch.equal(greedy.x[:, 1:], greedy.y[:, :-1])
    expected = teacher.generate(data.x[:, :4], 13, temperature=0.0)
    assert torch.equal(torch.cat([greedy.x, greedy.y[:, -1:]], 1), expected)
    sampled = [distill.teacher_generations(teacher, data, 4, seed=s).x for s in (0, 0, 1)]
    assert torch.equal(sampled[0], sampled[1]) and not torch.equal(sampled[0], sampled[2])
    with pytest.raises(ValueError, match="prompt_tokens"):
        distill.teacher_generations(teacher, data, prompt_tokens=16)


def test_transfer_batches_visit_every_window_once_per_epoch():
    data = distill.transfer_set(_teacher(), _stream(), 12, 8)
    batches = distill.TransferBatches(data, batch_size=4, seed=5)
    epoch = torch.cat([batches.rows(i) for i in range(3)])
    assert sorted(epoch.tolist()) == list(range(12))
    assert not torch.equal(epoch, torch.cat([batches.rows(i) for i in range(3, 6)]))
    x, y, t = batches(2)
    assert torch.equal(x, data.x[batches.rows(2)]) and t.dtype == torch.float32
    assert torch.equal(t, data.teacher_logits[batches.rows(2)].float())
    assert all(torch.equal(a, b) for a, b in zip(batches(2), distill.TransferBatches(
        data, 4, seed=5)(2)))  # a pure function of (seed, index)
    assert len(distill.TransferBatches(data, 4, soft=False)(0)) == 2
    with pytest.raises(ValueError, match="batch_size"):
        distill.TransferBatches(data, 0)


def test_loss_fn_checks_its_settings_and_its_batches():
    with pytest.raises(ValueError, match="temperature"):
        distill.distillation_loss_fn(temperature=0.0)
    with pytest.raises(ValueError, match="alpha"):
        distill.distillation_loss_fn(alpha=2.0)
    model = _teacher()
    x = torch.randint(0, 40, (2, 8))
    hard = distill.distillation_loss_fn(1.0, 0.0)(model, (x, x))
    torch.testing.assert_close(hard, next_token_loss(model(x), x))
    with pytest.raises(ValueError, match="teacher's logits"):
        distill.distillation_loss_fn(1.0, 0.5)(model, (x, x))


def test_soft_targets_entropy_and_top_k_mass():
    logits = torch.tensor([[2.0, 0.0, 0.0, -1.0]])
    p = distill.soft_targets(logits, 2.0)
    torch.testing.assert_close(p, torch.softmax(logits / 2, -1))
    by_hand = -sum(q * math.log(q) for q in p[0].tolist())
    assert float(distill.entropy(p)) == pytest.approx(by_hand, rel=1e-6)
    assert float(distill.entropy(torch.full((8,), 1 / 8))) == pytest.approx(math.log(8))
    assert float(distill.top_k_mass(logits, 2, 2.0)) == pytest.approx(float(p[0, :2].sum()))
    assert float(distill.top_k_mass(logits, 4, 5.0)) == pytest.approx(1.0)
    hot, flat = (float(distill.top_k_mass(logits, 1, T)) for T in (0.5, 4.0))
    assert hot > flat  # a higher temperature moves probability out of the top tokens
    with pytest.raises(ValueError, match="k must"):
        distill.top_k_mass(logits, 5)
    with pytest.raises(ValueError, match="temperature"):
        distill.soft_targets(logits, -1.0)


@pytest.fixture(scope="module")
def course_setup():
    from llmtrain.course import checkpoints, recipes, shared_data

    teacher, tok = checkpoints.load("base"), shared_data.course_tokenizer()
    base_docs = shared_data.corpus_documents(recipes.RECIPES["base"].corpus)
    corpus = shared_data.encode_documents(tok, base_docs)
    data = distill.transfer_set(teacher, corpus, n_windows=48, block_size=32, seed=0)
    return teacher, tok, data, shared_data.heldout_tokens()[:3000]


def test_soft_targets_teach_a_student_more_than_hard_labels(course_setup):
    """The chapter's effect on a small scale: same windows, steps and initial weights."""
    teacher, tok, data, heldout = course_setup
    config = distill.student_config("pico", tok.vocab_size, block_size=32)
    kw = dict(steps=40, batch_size=8, lr=1.2e-2, eval_every=20, device="cpu")
    hard = distill.train_student(config, data, heldout, alpha=0.0, **kw)
    soft = distill.train_student(config, data, heldout, alpha=1.0, temperature=1.0, **kw)
    assert hard.label == "hard labels" and soft.label == "soft T=1"
    assert hard.eval_steps == soft.eval_steps == [0, 20, 40]
    assert hard.heldout_loss[0] == soft.heldout_loss[0]  # the same initial weights
    assert hard.final_loss < hard.heldout_loss[0] - 1.0  # both learn something
    assert soft.final_loss < hard.final_loss - 0.05
    assert hard.n_params == GPT(config).num_params() and soft.best_loss <= soft.final_loss
    assert not soft.model.training


def test_train_student_refuses_settings_that_cannot_work(course_setup):
    teacher, tok, data, heldout = course_setup
    config = distill.student_config("pico", tok.vocab_size, block_size=32)
    generated = distill.TransferSet(data.x, data.y, source="teacher")
    with pytest.raises(ValueError, match="alpha=0"):
        distill.train_student(config, generated, heldout, steps=1, alpha=0.5, device="cpu")
    with pytest.raises(ValueError, match="block_size"):
        distill.train_student(distill.student_config("pico", tok.vocab_size, 16), data,
                              heldout, steps=1, device="cpu")
    with pytest.raises(TypeError, match="GPTConfig"):
        distill.train_student("pico", data, heldout, steps=1, device="cpu")
    with pytest.raises(ValueError, match="steps"):
        distill.train_student(config, data, heldout, steps=0, device="cpu")
    with pytest.raises(ValueError, match="unknown student"):
        distill.student_config("giant", tok.vocab_size)
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        distill.TransferSet(data.x, data.y[:, :5])


# --- pictures and playgrounds ---------------------------------------------------------
def test_soft_target_playground_shows_the_teachers_distribution(course_setup):
    teacher, tok, _, _ = course_setup
    panel = distillviz.soft_target_playground(teacher, tok, "Gababa Tosumi majored in", 1.0)
    logits = distillviz.next_token_logits(teacher, tok, "Gababa Tosumi majored in")
    best, p = distillviz.top_tokens(torch.softmax(logits, -1), tok, 1)[0]
    assert repr(best) in panel.last_text and f"{p:.1%}" in panel.last_text
    panel.controls["temperature"].value = 4.0
    assert "T = 4" in panel.last_text and panel.calls == 2
    flat = float(distill.entropy(distill.soft_targets(logits, 4.0)))
    assert f"entropy {flat:.2f} nats" in panel.last_text
    panel.controls["prompt"].value = "   "
    assert panel.error and "prompt" in panel.error


def test_distill_playground_trains_a_student_with_the_chosen_targets(course_setup):
    teacher, tok, data, heldout = course_setup
    config = distill.student_config("pico", tok.vocab_size, block_size=32)
    ref = distill.train_student(config, data, heldout, steps=6, device="cpu")
    panel = distillviz.distill_playground(config, data, heldout, {"hard": ref}, steps=6,
                                          lr=6e-3, temperature=2.0, alpha=0.5, device="cpu")
    assert "after 6 steps" in panel.last_text and "hard labels" in panel.last_text
    fig, _ = panel.last_result
    assert fig.axes[0].get_title() == "Your student: T = 2, alpha = 0.5"
    panel.controls["alpha"].value = 0.0
    panel.update()  # what the Run button does
    assert "T = 2, alpha = 0" in panel.last_result[0].axes[0].get_title()
    # alpha = 0 with the reference's settings: the reference is shown, not trained again
    assert panel.last_text.startswith(f"held-out loss after 6 steps: {ref.final_loss:.3f}")
    assert "from above" in panel.last_text and panel.last_result[0].axes[0].lines
    first_text = panel.last_text
    panel.controls["temperature"].value = 4.0  # the temperature does not matter at alpha = 0
    panel.update()
    assert panel.last_text == first_text
    panel.controls["alpha"].value = 1.0
    panel.update()
    assert "trained in" in panel.last_text


def test_a_run_knows_which_settings_would_repeat_it(course_setup):
    _, tok, data, heldout = course_setup
    config = distill.student_config("pico", tok.vocab_size, block_size=32)
    run = distill.train_student(config, data, heldout, steps=2, alpha=0.5, temperature=2.0,
                                device="cpu")
    same = dict(run.settings)
    assert run.matches(**same)
    assert not run.matches(**{**same, "lr": 1e-3})
    assert not run.matches(**{**same, "temperature": 1.0})
    copy = distill.TransferSet(data.x.clone(), data.y.clone(), data.teacher_logits)
    assert not run.matches(**{**same, "data": copy})  # another transfer set, even if equal
    assert not run.matches(steps=2)
    hard = distill.train_student(config, data, heldout, steps=2, alpha=0.0, device="cpu")
    assert hard.matches(**{**hard.settings, "temperature": 3.0})  # T is unused at alpha = 0


def test_plots_have_titles_and_labelled_axes(course_setup):
    teacher, tok, data, heldout = course_setup
    config = distill.student_config("pico", tok.vocab_size, block_size=32)
    run = distill.train_student(config, data, heldout, steps=4, batch_size=8, eval_every=2,
                                device="cpu")
    logits = distillviz.next_token_logits(teacher, tok, "Gababa Tosumi majored in")
    figs = [distillviz.soft_targets_plot(logits, tok, (1, 2)),
            distillviz.curves_plot([run], 0.6),
            distillviz.size_plot({"hard labels": [run]}, 0.6, teacher.num_params())]
    for fig in figs:
        for ax in fig.axes:
            assert ax.get_title()
        assert fig.axes[0].get_ylabel()
    assert len(figs[0].axes) == 2 and "entropy" in figs[0].axes[1].get_title()
    assert figs[1].axes[0].get_xlabel() == "optimizer step"
    assert figs[2].axes[0].get_xscale() == "log"
    with pytest.raises(ValueError, match="at least one"):
        distillviz.curves_plot([])
    import matplotlib.pyplot as plt

    plt.close("all")
