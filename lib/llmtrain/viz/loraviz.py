"""Pictures and the playground of chapter 11 (LoRA and QLoRA).

* ``comparison_plot``: correct answers against trainable parameters, and the
  optimizer's memory, for full fine-tuning and LoRA runs;
* ``lora_playground``: rank, alpha and target layers as controls; a button
  trains LoRA adapters on a fresh copy of the model and scores them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt

from ..compress.brief_skill import RunResult, SkillScore, finetune_run, skill_score
from ..compress.lora import apply_lora
from ..core.tokenizer import Tokenizer
from ..world.fiction import World
from .plots import new_axes
from .widgets import Playground, slider

TARGET_CHOICES = {
    "attention (qkv, proj)": ["attn.qkv", "attn.proj"],
    "MLP (fc, proj)": ["mlp.fc", "mlp.proj"],
    "attention qkv only": ["attn.qkv"],
    "all linear layers": "all",
}


def comparison_plot(runs: Sequence[tuple[RunResult, SkillScore]], reference: float | None = None,
                    reference_label: str = ""):
    """Left: share correct against trainable parameters (log scale). Right: optimizer state."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    new_axes("New skill learned, per trainable parameter", "trainable parameters (log scale)",
             "held-out questions correct", ax=left)
    for i, (run, score) in enumerate(runs):
        marker = "*" if run.name == "full" else "o"
        left.plot([run.trainable], [score.correct], marker, ms=12 if marker == "*" else 8,
                  color=f"C{i}", label=run.name)
    if reference is not None:
        left.axhline(reference, color="gray", ls="--", label=reference_label)
    left.set_xscale("log")
    left.set_ylim(0, 1)
    left.legend(fontsize=8)
    new_axes("Optimizer memory", "", "AdamW state (KB, log scale)", ax=right)
    right.bar(range(len(runs)), [r.optimizer_bytes / 1024 for r, _ in runs],
              color=[f"C{i}" for i in range(len(runs))])
    right.set_xticks(range(len(runs)), [r.name for r, _ in runs], fontsize=8)
    right.set_yscale("log")
    fig.tight_layout()
    return fig


def lora_playground(make_model: Callable, tokenizer: Tokenizer, world: World, examples,
                    steps: int = 30, n_people: int = 10, lr: float = 3e-3, rank: int = 4,
                    alpha: float = 16, targets: str = "all linear layers", seed: int = 0,
                    run_now: bool = True) -> Playground:
    """Train LoRA adapters with the chosen rank, alpha and target layers; show the loss curve,
    the trainable share and the scores on held-out people.

    ``make_model()`` returns a fresh copy of the model to adapt (the SFT model).
    """
    if targets not in TARGET_CHOICES:
        raise ValueError(f"targets must be one of {list(TARGET_CHOICES)}, got {targets!r}")

    def run(rank: int, alpha: float, targets: str):
        model = make_model()
        report = apply_lora(model, TARGET_CHOICES[targets], r=rank, alpha=alpha, seed=seed)
        result = finetune_run(model, tokenizer, examples, name=f"r={rank}", steps=steps, lr=lr,
                              batch_size=16, seed=seed, device="cpu")
        score = skill_score(model, tokenizer, world, "heldout", n_people=n_people)
        fig, ax = plt.subplots(figsize=(5, 2.6))
        ax.plot(result.history.steps, result.history.loss)
        ax.set(title=f"LoRA r={rank}, alpha={alpha:g} on {targets}", xlabel="step",
               ylabel="training loss (nats/token)", yscale="log")
        fig.tight_layout()
        lines = [f"{report}",
                 f"{steps} steps in {result.seconds:.1f} s; held-out people: {score.brief:.0%} "
                 f"brief, {score.correct:.0%} correct"]
        lines += [f"  {q}  ->  {a}" for q, a in score.examples]
        return fig, "\n".join(lines)

    controls = {
        "rank": slider(rank, 1, 64, 1, "rank r"),
        "alpha": slider(float(alpha), 1.0, 128.0, 1.0, "alpha"),
        "targets": W.Dropdown(options=list(TARGET_CHOICES), value=targets,
                              description="layers", style={"description_width": "initial"}),
    }
    return Playground(run, controls, title="Train your own adapters", run_button=True,
                      run_now=run_now)
