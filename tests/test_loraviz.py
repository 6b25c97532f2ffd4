"""Chapter 11's comparison plot and LoRA playground, on a tiny random model."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from llmtrain.compress import brief_skill
from llmtrain.core.model import GPT, preset
from llmtrain.core.train import History
from llmtrain.viz import loraviz
from llmtrain.world.fiction import World


def test_comparison_plot_has_one_point_and_bar_per_run():
    runs = [(brief_skill.RunResult(name, n, 10_000, 8 * n, 1.0, History()),
             brief_skill.SkillScore("heldout", 5, 1.0, c, ()))
            for name, n, c in (("full", 10_000, 0.5), ("LoRA r=1", 100, 0.2))]
    fig = loraviz.comparison_plot(runs, reference=0.7, reference_label="sft")
    left, right = fig.axes
    assert left.get_xscale() == "log" and "trainable" in left.get_xlabel()
    assert len(right.patches) == 2
    plt.close(fig)


def test_playground_trains_with_the_chosen_rank_and_layers(tok, one_thread):
    world = World.generate(seed=0, n_people=20, n_unseen=2)
    examples = brief_skill.brief_examples(world, ("sft",))

    def make():
        torch.manual_seed(0)
        return GPT(preset("nano", vocab_size=tok.vocab_size, block_size=48))

    panel = loraviz.lora_playground(make, tok, world, examples, steps=2, n_people=1, rank=2,
                                    alpha=4, targets="attention qkv only")
    assert panel.calls == 1 and panel.error is None
    assert panel.last_text.startswith("2 layers adapted") and "brief" in panel.last_text
    panel.controls["targets"].value = "all linear layers"
    panel.controls["rank"].value = 3
    panel.update()  # the Run button
    assert panel.last_text.startswith("8 layers adapted")
    assert "LoRA r=3" in panel.last_result[0].axes[0].get_title()
    with pytest.raises(ValueError, match="targets must be one of"):
        loraviz.lora_playground(make, tok, world, examples, targets="everything")
