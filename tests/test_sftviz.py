from __future__ import annotations

import matplotlib
import pytest
import torch

from llmtrain.align.sft import Scorecard, qa_examples
from llmtrain.core.model import GPT, preset
from llmtrain.viz import sftviz
from llmtrain.world.fiction import World

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return World.generate(seed=3, n_people=20, n_unseen=2)


def _nano(tok):
    torch.manual_seed(0)
    return GPT(preset("nano", vocab_size=tok.vocab_size, block_size=64)).eval()


def _card(split, answered=0.9, correct=0.5, abstained=0.1):
    return Scorecard(split, 10, answered, correct, abstained, answered - correct - abstained, ())


def test_loss_mask_view_marks_answer_tokens_only(tok):
    text = sftviz.loss_mask_view(tok, "Where was Kalo Mira born?", "In Orvik.")
    lines = text.splitlines()
    assert "'<|user|>'" in lines[1] and lines[1].endswith("-")
    answer_lines = [line for line in lines if "Orvik" in line or "'<|end|>'" in line]
    assert answer_lines[-1].endswith("yes")  # the closing <|end|> is a target
    first_end = next(line for line in lines if "'<|end|>'" in line)
    assert first_end.endswith("-")  # the <|end|> inside the prompt is not
    n = sum(line.endswith("yes") for line in lines)
    assert lines[-1].startswith(f"{n} of ")
    unmasked = sftviz.loss_mask_view(tok, "Where was Kalo Mira born?", "In Orvik.",
                                     mask_prompt=False)
    assert sum(line.endswith("yes") for line in unmasked.splitlines()) == len(lines) - 3


def test_plots_draw_one_bar_per_model_and_group():
    fig = sftviz.scorecard_plot({"a": [_card("sft"), _card("heldout")], "b": [_card("unseen")]})
    ax = fig.axes[0]
    assert len(ax.get_xticklabels()) == 3
    assert len(ax.patches) == 3 * len(sftviz.KIND_COLORS)
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == pytest.approx(3.0)  # each bar's parts add up to 1
    fig = sftviz.curve_plot([10, 100], [_card("heldout", correct=0.1), _card("heldout")])
    assert [list(line.get_ydata()) for line in fig.axes[0].lines] == [[0.9, 0.9], [0.1, 0.5]]


def test_ask_playground_shows_every_model_and_rejects_an_empty_question(tok):
    model = _nano(tok)
    panel = sftviz.ask_playground({"base": model, "sft": model}, tok, "Where was Kalo born?",
                                  chat={"base": False})
    assert panel.calls == 1 and panel.error is None
    lines = panel.last_text.splitlines()
    assert lines[0].startswith("base:") and lines[1].startswith(" sft:")
    panel.controls["question"].value = "   "
    assert panel.error and "type a question" in panel.error


def test_finetune_playground_trains_on_click_and_refuses_long_runs(tok, world):
    examples = qa_examples(world)
    pretrain = torch.randint(0, 500, (2000,))
    panel = sftviz.finetune_playground(lambda: _nano(tok), tok, world, examples, pretrain,
                                       n_people=2, max_steps=4, run_now=False, n_examples=20,
                                       epochs=2)
    assert panel.calls == 0  # waits for the button
    panel.update()
    assert panel.error is None, panel.error
    assert "held-out people" in panel.last_text
    assert "2 steps" in panel.last_result[0].axes[0].get_title()
    panel.controls["epochs"].value = 10
    panel.update()
    assert panel.error and "allows 4" in panel.error
