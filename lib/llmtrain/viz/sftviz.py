"""Pictures and playgrounds for chapter 06 (supervised fine-tuning).

* ``loss_mask_view``: a conversation token by token, marking the tokens that
  count in the loss;
* ``scorecard_plot``: correct / invented / abstained / off-format answers per
  group of people, for one or more models;
* ``curve_plot``: held-out accuracy and answer format against the number of
  fine-tuning examples;
* ``ask_playground``: type a question, read every model's answer;
* ``finetune_playground``: sliders for examples, epochs and learning rate; a
  button fine-tunes a fresh copy of the base model and scores it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from ..align.sft import Scorecard, answer, finetune, raw_continuation, scorecard
from ..core.chat import encode_example
from ..core.losses import IGNORE_INDEX
from ..core.tokenizer import Tokenizer
from ..world.fiction import World
from .plots import new_axes
from .widgets import Playground, slider


def loss_mask_view(tokenizer: Tokenizer, question: str, response: str,
                   mask_prompt: bool = True) -> str:
    """One line per token: its text, and whether predicting it counts in the loss.

    A token "counts" when it is the *target* of some position, i.e. when the
    label of the position before it is not ``IGNORE_INDEX``.
    """
    ids, labels = encode_example(tokenizer, question, response, mask_prompt=mask_prompt)
    counted = [False] + [lab != IGNORE_INDEX for lab in labels[:-1]]
    lines = [f"{'position':>8}  {'token':<18} counts in the loss?"]
    for i, (t, c) in enumerate(zip(ids, counted)):
        lines.append(f"{i:>8}  {tokenizer.decode([t])!r:<18} {'yes' if c else '-'}")
    n = sum(counted)
    lines.append(f"{n} of {len(ids)} tokens are targets of the loss")
    return "\n".join(lines)


KIND_COLORS = {"correct": "#2a9d5c", "invented": "#d1495b", "abstained": "#edae49",
               "off-format": "#9a9a9a"}


def scorecard_plot(cards: dict[str, Sequence[Scorecard]], title: str = "", ax=None):
    """Stacked bars: for each model (key) and group of people, what its answers were."""
    labels, parts = [], {k: [] for k in KIND_COLORS}
    for model_name, model_cards in cards.items():
        for c in model_cards:
            labels.append(f"{model_name}\n{c.split}")
            parts["correct"].append(c.correct)
            parts["invented"].append(c.invented)
            parts["abstained"].append(c.abstained)
            parts["off-format"].append(1 - c.answered)
    ax = new_axes(title or "What the answers were", "", "share of questions", ax=ax,
                  figsize=(max(5, 1.1 * len(labels) + 1), 3.5))
    bottom = [0.0] * len(labels)
    for kind, values in parts.items():
        ax.bar(range(len(labels)), values, bottom=bottom, color=KIND_COLORS[kind], label=kind)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.figure.tight_layout()
    return ax.figure


def curve_plot(sizes: Sequence[int], cards: Sequence[Scorecard], ax=None):
    """Held-out accuracy and answer-format share against the number of SFT examples."""
    ax = new_axes("How many fine-tuning examples?", "fine-tuning examples (log scale)",
                  "share of held-out questions", ax=ax)
    ax.plot(sizes, [c.answered for c in cards], "o-", color=KIND_COLORS["off-format"],
            label="answered in the assistant format")
    ax.plot(sizes, [c.correct for c in cards], "o-", color=KIND_COLORS["correct"],
            label="answered correctly")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def ask_playground(models: dict, tokenizer: Tokenizer, question: str,
                   chat: dict[str, bool] | None = None) -> Playground:
    """A text box for a question and every model's greedy answer.

    ``chat[name]`` False shows what the model writes after the bare question
    (how a base model is used); default True: the chat template.
    """
    chat = chat or {}
    width = max(len(n) for n in models)

    def show(question: str) -> str:
        q = question.strip()
        if not q:
            raise ValueError("type a question, e.g. 'Where was Gababa Tosumi born?'")
        lines = []
        for name, model in models.items():
            if chat.get(name, True):
                reply = answer(model, tokenizer, [q])[0]
            else:
                reply = raw_continuation(model, tokenizer, [q])[0]
            lines.append(f"{name:>{width}}: {reply}")
        return "\n".join(lines)

    box = W.Text(value=question, description="question", continuous_update=False,
                 layout=W.Layout(width="32em"))
    return Playground(show, {"question": box}, title="Ask the models")


def finetune_playground(
    make_base: Callable[[], torch.nn.Module],
    tokenizer: Tokenizer,
    world: World,
    examples: Sequence,
    pretrain_tokens: torch.Tensor,
    n_people: int = 20,
    max_steps: int = 300,
    run_now: bool = True,
    n_examples: int = 100,
    epochs: int = 2,
    lr: float = 1e-3,
) -> Playground:
    """Fine-tune a fresh copy of the base model with the chosen examples, epochs and lr.

    One step takes 32 examples (plus 8 pretraining windows), so
    steps = ceil(examples x epochs / 32), capped at ``max_steps`` so that a
    click never trains for long. Shows the loss curve, the scorecard on
    held-out people and three answers.
    """
    base = make_base()

    def run(n_examples: int, epochs: int, lr: float):
        steps = -(-n_examples * epochs // 32)
        if steps > max_steps:
            raise ValueError(f"{n_examples} examples x {epochs} epochs is {steps} steps; this "
                             f"playground allows {max_steps}: fewer examples or epochs")
        model = copy.deepcopy(base)
        history = finetune(model, tokenizer, list(examples)[:n_examples], steps=steps,
                           batch_size=32, lr=lr, pretrain_tokens=pretrain_tokens,
                           pretrain_windows=8, block_size=40, device="cpu")
        if history.diverged:
            raise ValueError(f"training diverged at lr={lr:g}: {history.diverged}")
        card = scorecard(model, tokenizer, world, "heldout", n_people=n_people, n_examples=3)
        fig, ax = plt.subplots(figsize=(5, 2.6))
        ax.plot(history.steps, history.loss)
        ax.set(title=f"{n_examples} examples x {epochs} epochs = {steps} steps",
               xlabel="step", ylabel="training loss")
        fig.tight_layout()
        lines = [f"held-out people: {card.answered:.0%} answered in format, "
                 f"{card.correct:.0%} correct, {card.invented:.0%} invented"]
        lines += [f"  {q}  ->  {a}   (truth: {t})" for q, a, t in card.examples]
        return fig, "\n".join(lines)

    controls = {
        "n_examples": slider(n_examples, 10, len(examples), 10, "examples"),
        "epochs": slider(epochs, 1, 10, 1, "epochs"),
        "lr": slider(lr, -5, -1, 0.1, "learning rate", log=True),
    }
    return Playground(run, controls, title="Fine-tune the base model yourself",
                      run_button=True, run_now=run_now)
