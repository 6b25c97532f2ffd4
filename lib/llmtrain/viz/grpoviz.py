"""Pictures and the playground of chapter 16 (reinforcement learning with verifiable rewards).

* ``LiveGRPOPlot``: a ``GRPOTrainer`` callback, four panels (training reward,
  held-out pass@1, answer length, KL to the start model) redrawn in place, with
  the step count and the seconds so far in the title;
* ``passk_plot``: pass@k against k for several models;
* ``hacking_plot``: a run against the strict verifier next to one against a
  sloppy verifier: the reward each was trained on, and the exact held-out
  accuracy of both;
* ``grpo_playground``: group size, KL coefficient, learning rate, steps and the
  verifier; a Run button trains a fresh copy of the start model.

Every function returns its figure (or text) and keeps what it drew, so tests
can check it without a browser.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt

from ..align.grpo import (
    GRPOConfig,
    GRPOHistory,
    GRPOTrainer,
    digits_somewhere_reward,
    exact_reward,
    sample_correct,
)
from .plots import new_axes, show_in_place
from .widgets import Playground, slider

VERIFIERS = {"strict": exact_reward, "sloppy": digits_somewhere_reward}
PANELS = (("reward", "reward on training problems"), ("pass1", "held-out pass@1 (exact)"),
          ("length", "answer length (tokens)"), ("kl", "KL to the start model (nats/answer)"))


def heldout_pass1(problems: Sequence, tokenizer, samples: int = 2, seed: int = 1234
                  ) -> Callable:
    """An ``eval_fn`` for ``GRPOTrainer``: {"pass1": share of ``samples`` sampled answers per
    held-out problem that the strict verifier accepts}."""
    def evaluate(model) -> dict:
        correct, _ = sample_correct(model, tokenizer, problems, exact_reward, samples, seed=seed)
        return {"pass1": float(correct.float().mean())}
    return evaluate


def _curve(history: GRPOHistory, key: str) -> tuple[list, list]:
    if key == "pass1":
        return [e["step"] for e in history.evals], [e["pass1"] for e in history.evals]
    return history.step, getattr(history, key)


class LiveGRPOPlot:
    """A ``GRPOTrainer`` callback: four panels redrawn every ``every`` steps, in place.

    The title says how far the run is ("step 12 of 30, 4 s"), so it doubles as
    the progress indicator. In a notebook the figure updates in place;
    elsewhere ``redraws`` and the trainer's history record what would have been
    shown.
    """
    def __init__(self, every: int = 5, title: str = "GRPO, live", display: bool = True):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive whole number, got {every!r}")
        self.every, self.title, self.display = every, title, display
        self.redraws, self._handle = 0, None
        self.fig, axes = plt.subplots(1, 4, figsize=(13, 3))
        self.axes = axes.ravel()
        plt.close(self.fig)

    def __call__(self, trainer: GRPOTrainer, step: int, stats: dict) -> None:
        if step % self.every == 0 or step == trainer.config.steps or step == 1:
            self.draw(trainer.history, f"step {step} of {trainer.config.steps}, "
                                       f"{trainer.history.seconds:.0f} s")

    def draw(self, history: GRPOHistory, progress: str = "") -> None:
        for ax, (key, label) in zip(self.axes, PANELS):
            ax.clear()
            new_axes(label, "GRPO step", "", ax)
            xs, ys = _curve(history, key)
            ax.plot(xs, ys, "o-" if key == "pass1" else "-", color="C0", lw=1, ms=3)
            if key in ("reward", "pass1"):
                ax.set_ylim(-0.02, 1.02)
            elif key == "length" and ys:
                ax.set_ylim(0, 1.15 * max(ys))
            ax.title.set_fontsize(9)
        self.fig.suptitle(f"{self.title}: {progress}" if progress else self.title)
        self.fig.tight_layout()
        self.redraws += 1
        if self.display:
            self._handle = show_in_place(self.fig, self._handle)


def passk_plot(curves: dict[str, tuple[Sequence[int], Sequence[float]]], ax=None,
               title: str = "pass@k on held-out problems"):
    """pass@k against k (log scale) for each model: ``curves`` = {label: (ks, values)}."""
    ax = new_axes(title, "k (answers sampled per problem)", "share of problems solved",
                  ax=ax, figsize=(6, 3.6))
    for i, (label, (ks, values)) in enumerate(curves.items()):
        ax.plot(ks, values, "o-", color=f"C{i}", ms=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    return ax


def hacking_plot(runs: dict[str, GRPOHistory], title: str = "Strict and sloppy verifiers"):
    """Two panels: the reward each run was trained on, and exact held-out pass@1."""
    fig, (ax_r, ax_p) = plt.subplots(1, 2, figsize=(11, 3.6))
    new_axes("Reward the run was trained on", "GRPO step", "mean reward", ax_r)
    new_axes("What we wanted: exact answers (held out)", "GRPO step", "pass@1 (exact)", ax_p)
    for i, (label, h) in enumerate(runs.items()):
        ax_r.plot(h.step, h.reward, color=f"C{i}", lw=1, label=label)
        ax_p.plot(*_curve(h, "pass1"), "o-", color=f"C{i}", ms=3, label=label)
    for ax in (ax_r, ax_p):
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def grpo_playground(start, tokenizer, problems: Sequence, heldout: Sequence,
                    config: GRPOConfig, max_steps: int = 60, room: int | None = None,
                    run_now: bool = True, defaults: dict | None = None) -> Playground:
    """Group size, KL coefficient, learning rate, steps and verifier; Run trains a fresh copy
    of ``start`` with GRPO and shows its reward and held-out pass@1, with a few answers.

    ``config`` gives everything the controls do not (problems per step, epochs,
    seed, device); ``defaults`` the controls' first values.
    """
    d = {"group_size": config.group_size, "kl_coef": config.kl_coef, "lr": config.lr,
         "steps": min(config.steps, max_steps), "verifier": "strict", **(defaults or {})}
    state: dict = {}
    evaluate = heldout_pass1(heldout, tokenizer)

    def run(group_size, kl_coef, lr, steps, verifier):
        if steps > max_steps:
            raise ValueError(f"at most {max_steps} steps here (each takes a fraction of a "
                             "second to a second)")
        cfg = GRPOConfig(**{**config.__dict__, "group_size": group_size, "kl_coef": kl_coef,
                            "lr": lr, "steps": steps})
        trainer = GRPOTrainer(copy.deepcopy(start), tokenizer, problems, VERIFIERS[verifier],
                              cfg, reference=start, eval_fn=evaluate,
                              eval_every=max(1, steps // 4))
        history = trainer.fit()
        state.update(history=history, trainer=trainer)
        fig, axes = plt.subplots(1, 3, figsize=(11, 2.8))
        for ax, key in zip(axes, ("reward", "pass1", "length")):
            new_axes(dict(PANELS)[key], "GRPO step", "", ax)
            ax.plot(*_curve(history, key), "o-" if key == "pass1" else "-", ms=3)
            ax.title.set_fontsize(9)
        fig.tight_layout()
        first, last = history.evals[0]["pass1"], history.evals[-1]["pass1"]
        ro = trainer.last_rollout
        lines = [f"{verifier} verifier, G = {group_size}, beta = {kl_coef:g}, lr = {lr:.1e}, "
                 f"{steps} steps in {history.seconds:.1f} s: held-out pass@1 {first:.0%} -> "
                 f"{last:.0%}, training reward {history.reward[0]:.2f} -> "
                 f"{history.last('reward'):.2f}",
                 "a few answers of the last rollout (reward in brackets):"]
        for p, c, r in list(zip([p for p in ro.problems for _ in range(cfg.group_size)],
                                ro.completions, ro.rewards.reshape(-1).tolist()))[:4]:
            lines.append(f"  [{r:.0f}] {p.prompt}{c}   (true sum {p.answer})")
        return fig, "\n".join(lines)

    controls = {
        "group_size": slider(d["group_size"], 2, 16, 1, "group size G"),
        "kl_coef": slider(float(d["kl_coef"]), 0.0, 0.5, 0.01, "KL coefficient"),
        "lr": slider(float(d["lr"]), -4.5, -2.5, 0.1, "learning rate", log=True),
        "steps": slider(d["steps"], 1, max_steps, 1, "steps"),
        "verifier": W.ToggleButtons(options=list(VERIFIERS), value=d["verifier"],
                                    description="verifier"),
    }
    panel = Playground(run, controls, title="GRPO playground", run_button=True, run_now=run_now)
    panel.state = state
    return panel
