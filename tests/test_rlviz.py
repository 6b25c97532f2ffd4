"""Chapter 08-09 pictures and playgrounds, driven from code."""

from __future__ import annotations

import copy

import pytest
import torch

from llmtrain.align import ppo
from llmtrain.align.bestofn import best_of_n_curve
from llmtrain.align.preferences import PreferencePair
from llmtrain.align.reward_model import RewardModel
from llmtrain.align.sft import qa_examples
from llmtrain.viz import rlviz

pytestmark = pytest.mark.usefixtures("one_thread")


def test_live_plot_redraws_and_rollout_table_lists_every_token(tok, world, nano):
    policy, rm = nano(), RewardModel(nano(1))
    live = rlviz.LivePPOPlot(every=2, display=False)
    cfg = ppo.PPOConfig(steps=4, batch_size=8, max_new_tokens=4, device="cpu")
    trainer = ppo.PPOTrainer(policy, tok, qa_examples(world), ppo.reward_model_scorer(rm, tok),
                             cfg, reward_model=rm, gold_fn=ppo.gold_scorer(), callbacks=[live])
    trainer.fit()
    assert live.redraws == 2 and len(live.axes[0].lines) == 1
    assert list(live.axes[0].lines[0].get_xdata()) == [1, 2, 3, 4]
    table = rlviz.rollout_table(trainer.last_rollout, trainer.last_advantages, tok, row=0)
    n = int(trainer.last_rollout.response_mask[0].sum())
    assert len(table.splitlines()) == 3 + n and "advant." in table


def test_overoptimisation_plot_draws_every_run_and_best_of_n():
    runs = {"beta 0": {"kl": [0, 1, 2], "proxy": [0, 1, 2], "gold": [0, 0.5, -1]},
            "beta 0.1": {"kl": [0, 0.5, 0.7], "proxy": [0, 0.5, 0.6], "gold": [0, 0.3, 0.4]}}
    bon = best_of_n_curve(torch.randn(5, 8), torch.randn(5, 8), [1, 2, 4, 8])
    fig = rlviz.overoptimisation_plot(runs, bon, smooth=1)
    ax_p, ax_g = fig.axes
    assert len(ax_p.lines) == len(ax_g.lines) == 3
    assert list(ax_g.lines[0].get_ydata()) == [0, 0.5, -1]


def test_ppo_playground_runs_a_fresh_copy_and_rejects_too_many_steps(tok, world, nano):
    policy, rm = nano(), RewardModel(nano(1))
    state = copy.deepcopy(policy.state_dict())
    examples = qa_examples(world)
    panel = rlviz.ppo_playground(policy, rm, tok, examples, examples[:2], max_steps=5,
                                 batch_size=4)
    panel.controls["steps"].value = 2
    panel.update()
    assert panel.error is None and len(panel.state["history"].step) == 2
    assert panel.last_text.count("before:") == 2
    assert all(torch.equal(v, state[k]) for k, v in policy.state_dict().items())
    panel.controls["steps"].max = 50
    panel.controls["steps"].value = 50
    panel.update()
    assert "at most 5 steps" in panel.error


def test_dpo_playground_trains_and_shows_answers(tok, world, nano):
    policy = nano()
    examples = qa_examples(world)[:6]
    pairs = [PreferencePair(e.question, e.answer, "I don't know.", 1.0, e.person, e.attribute)
             for e in examples]
    panel = rlviz.dpo_playground(policy, tok, pairs, examples[:2], max_steps=4)
    panel.controls["steps"].value = 3
    panel.update()
    assert panel.error is None and len(panel.state["history"].loss) == 3
    assert "after:" in panel.last_text
