"""Chapter 12's pictures and playgrounds: soft targets, students' curves, size against quality.

Each plot function returns a matplotlib figure with a title, labelled axes
and units; each playground is a ``widgets.Playground`` whose last result a
test can read (``last_result``, ``last_text``).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from ..compress.distill import StudentRun, TransferSet, entropy, soft_targets, train_student
from ..core.model import GPT, GPTConfig
from ..core.tokenizer import Tokenizer
from .widgets import Playground, slider


@torch.no_grad()
def next_token_logits(model: GPT, tokenizer: Tokenizer, prompt: str) -> torch.Tensor:
    """The model's logits (V,) for the token after ``prompt``."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("type a prompt: a few words for the teacher to continue")
    ids = tokenizer.encode(prompt, allow_special=False)[-model.config.block_size:]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits = model(torch.tensor([ids], device=device))[0, -1].float().cpu()
    model.train(was_training)
    return logits


def top_tokens(probs: torch.Tensor, tokenizer: Tokenizer, k: int = 8) -> list[tuple[str, float]]:
    """The k likeliest tokens of a distribution (V,), as (text, probability), likeliest first."""
    values, ids = probs.topk(k)
    return [(tokenizer.decode([i]), v) for i, v in zip(ids.tolist(), values.tolist())]


def soft_targets_plot(logits: torch.Tensor, tokenizer: Tokenizer,
                      temperatures: Sequence[float] = (1.0, 2.0, 4.0), k: int = 8,
                      title: str = ""):
    """One panel per temperature: the probabilities of the k tokens likeliest at T = 1,
    and of all the other tokens together."""
    order = logits.topk(k).indices
    labels = [repr(tokenizer.decode([i]))[1:-1] for i in order.tolist()] + ["all others"]
    fig, axes = plt.subplots(1, len(temperatures), figsize=(3.6 * len(temperatures), 3.2),
                             sharey=True, squeeze=False)
    for ax, T in zip(axes[0], temperatures):
        p = soft_targets(logits, T)
        shown = p[order].tolist()
        bars = ax.bar(range(k + 1), shown + [1 - sum(shown)], color=["C0"] * k + ["C7"])
        bars[0].set_color("C3")
        ax.set_xticks(range(k + 1), labels, rotation=60, fontsize=8)
        ax.set_title(f"T = {T:g}: entropy {float(entropy(p)):.2f} nats", fontsize=10)
        ax.set_ylim(0, 1)
        ax.set_xlabel("next token", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("teacher's probability")
    fig.suptitle(title or f"The teacher's soft targets at {len(temperatures)} temperatures")
    fig.tight_layout()
    return fig


def curves_plot(runs: Sequence[StudentRun], teacher_loss: float | None = None,
                title: str = "Held-out loss of students with different targets"):
    """Held-out loss (nats per token) against optimizer steps, one line per student.

    Left: the whole run, with the teacher's loss as a dotted line. Right: the second
    half of training, zoomed in on the best students.
    """
    if not runs:
        raise ValueError("curves_plot needs at least one StudentRun")
    fig, (full, zoom) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        style = "--" if run.source == "teacher" else "-"
        for ax in (full, zoom):
            ax.plot(run.eval_steps, run.heldout_loss, style, marker="o", ms=3, label=run.label)
    if teacher_loss is not None:
        full.axhline(teacher_loss, color="black", ls=":",
                     label=f"the teacher ({teacher_loss:.2f})")
    start = max(r.heldout_loss[0] for r in runs)
    full.set_ylim((teacher_loss if teacher_loss is not None else 0) - 0.3, start + 0.5)
    best = min(r.final_loss for r in runs)
    last = max(r.eval_steps[-1] for r in runs)
    zoom.set_xlim(last / 2, last * 1.02)
    zoom.set_ylim(best - 0.1, best + 1.0)
    full.set(title=title, xlabel="optimizer step", ylabel="held-out loss (nats/token)")
    zoom.set(title="Zoom: the second half", xlabel="optimizer step",
             ylabel="held-out loss (nats/token)")
    for ax in (full, zoom):
        ax.grid(alpha=0.3)
    full.legend(fontsize=8)
    fig.tight_layout()
    return fig


def size_plot(by_targets: Mapping[str, Sequence[StudentRun]], teacher_loss: float,
              teacher_params: int, title: str = "Size against quality"):
    """Final held-out loss against parameters (log scale), one line per kind of targets."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, runs in by_targets.items():
        runs = sorted(runs, key=lambda r: r.n_params)
        ax.plot([r.n_params for r in runs], [r.final_loss for r in runs], "o-", label=label)
    ax.axhline(teacher_loss, color="black", ls=":", label=f"the teacher ({teacher_loss:.2f})")
    ax.plot([teacher_params], [teacher_loss], "k*", ms=12)
    ax.set_xscale("log")
    ax.set(title=title, xlabel="parameters (log scale)", ylabel="held-out loss (nats/token)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def soft_target_playground(teacher: GPT, tokenizer: Tokenizer, prompt: str,
                           temperature: float = 2.0, k: int = 10) -> Playground:
    """Type a prompt, move the temperature: the teacher's next-token distribution."""
    def show(prompt: str, temperature: float):
        logits = next_token_logits(teacher, tokenizer, prompt)
        fig = soft_targets_plot(logits, tokenizer, (temperature,), k=k,
                                title="The teacher's next token")
        p = soft_targets(logits, temperature)
        best, p_best = top_tokens(p, tokenizer, 1)[0]
        return fig, (f"T = {temperature:g}: the likeliest next token {best!r} gets {p_best:.1%}; "
                     f"entropy {float(entropy(p)):.2f} nats (uniform over {len(p):,} tokens: "
                     f"{torch.log(torch.tensor(float(len(p)))):.2f})")

    box = W.Text(value=prompt, description="prompt", continuous_update=False,
                 layout=W.Layout(width="32em"))
    return Playground(show, {"prompt": box,
                             "temperature": slider(temperature, 0.25, 8.0, 0.25, "temperature")},
                      title="Soft targets")


def distill_playground(config: GPTConfig, data: TransferSet, heldout_tokens,
                       references: Mapping[str, StudentRun], steps: int, lr: float,
                       seed: int = 0, temperature: float = 1.0, alpha: float = 0.5,
                       device: str = "auto", run_now: bool = True) -> Playground:
    """Train a fresh student with the chosen temperature and alpha; compare with references.

    The same transfer set, steps, learning rate and initial weights as the
    reference runs, so the curve differs from theirs only by its targets. A
    setting that a reference run already used (the same alpha and, for alpha > 0,
    the same temperature) shows that run instead of training it again: with the
    same seed it would give the same student.
    """
    def run(temperature: float, alpha: float):
        start = time.perf_counter()
        settings = dict(config=config, data=data, heldout_tokens=heldout_tokens, steps=steps,
                        temperature=temperature, alpha=alpha, lr=lr, seed=seed)
        defaults = {k: p.default for k, p in inspect.signature(train_student).parameters.items()
                    if k in ("batch_size", "eval_every", "eval_windows")}
        known = [r for r in references.values() if r.matches(**settings, **defaults)]
        student = known[0] if known else train_student(**settings, device=device)
        seconds = time.perf_counter() - start
        fig, ax = plt.subplots(figsize=(6, 3.4))
        for ref in references.values():
            ax.plot(ref.eval_steps, ref.heldout_loss, ":", color="gray", lw=1)
            ax.annotate(ref.label, (ref.eval_steps[-1], ref.final_loss), fontsize=7,
                        color="gray", textcoords="offset points", xytext=(-40, 4))
        ax.plot(student.eval_steps, student.heldout_loss, "o-", color="C3", ms=3,
                label=student.label)
        ax.set(title=f"Your student: T = {temperature:g}, alpha = {alpha:g}",
               xlabel="optimizer step", ylabel="held-out loss (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        finals = [student.final_loss] + [r.final_loss for r in references.values()]
        ax.set_ylim(min(finals) - 0.3, max(finals) + 1.2)
        fig.tight_layout()
        refs = ", ".join(f"{r.label} {r.final_loss:.2f}" for r in references.values())
        how = f"the run {student.label!r} from above" if known else f"trained in {seconds:.1f} s"
        text = (f"held-out loss after {steps} steps: {student.final_loss:.3f} nats/token "
                f"(references: {refs}); {how}")
        return fig, text

    controls = {"temperature": slider(temperature, 0.5, 8.0, 0.5, "temperature T"),
                "alpha": slider(alpha, 0.0, 1.0, 0.1, "alpha (soft share)")}
    return Playground(run, controls, title="Distil a student yourself", run_button=True,
                      run_now=run_now)
