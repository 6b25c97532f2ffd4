"""Pictures and playgrounds of chapters 08 and 09: PPO's live dashboard, over-optimisation
curves, one rollout token by token, and the tuning playgrounds.

Every function returns its figure (or text) and keeps what it drew, so tests
can check it without a browser.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import matplotlib.pyplot as plt

from ..align.policy_runs import run_dpo
from ..align.ppo import (
    PPOConfig,
    PPOTrainer,
    Rollout,
    gold_scorer,
    reward_model_scorer,
    token_rewards,
)
from ..align.sft import answer
from .plots import new_axes, show_in_place
from .widgets import Playground, slider

PANELS = (("proxy", "reward model's score"), ("gold", "judge's score (gold)"),
          ("kl", "KL to SFT (nats/response)"), ("entropy", "entropy (nats/token)"),
          ("length", "response length (tokens)"), ("clip_fraction", "clipped tokens (share)"))


class LivePPOPlot:
    """A ``PPOTrainer`` callback: six small panels redrawn every ``every`` steps.

    In a notebook the figure updates in place; elsewhere ``redraws`` and the
    trainer's history record what would have been shown.
    """
    def __init__(self, every: int = 5, title: str = "PPO, live", display: bool = True):
        self.every, self.title, self.display = every, title, display
        self.redraws, self._handle = 0, None
        self.fig, axes = plt.subplots(2, 3, figsize=(11, 5))
        self.axes = axes.ravel()
        plt.close(self.fig)

    def __call__(self, trainer: PPOTrainer, step: int, stats: dict) -> None:
        if step % self.every == 0 or step == trainer.config.steps:
            self.draw(trainer.history)

    def draw(self, history) -> None:
        for ax, (key, label) in zip(self.axes, PANELS):
            ax.clear()
            new_axes(label, "PPO step", "", ax)
            ax.plot(history.step, getattr(history, key), color="C0", lw=1)
            ax.title.set_fontsize(9)
        self.fig.suptitle(self.title)
        self.fig.tight_layout()
        self.redraws += 1
        if self.display:
            self._show()

    def _show(self):
        self._handle = show_in_place(self.fig, self._handle)


def overoptimisation_plot(runs: dict[str, dict], best_of_n: dict | None = None,
                          smooth: int = 5, title: str = "Optimising a learned reward"):
    """Proxy and gold reward against KL to the reference, for PPO runs and best-of-n.

    ``runs``: {label: {"kl": [...], "proxy": [...], "gold": [...]}} per PPO step
    (smoothed over ``smooth`` steps); ``best_of_n``: a ``bestofn.best_of_n_curve``.
    """
    fig, (ax_p, ax_g) = plt.subplots(1, 2, figsize=(11, 4))
    new_axes("Reward model (what is optimised)", "KL to the SFT model (nats)",
             "mean reward-model score", ax_p)
    new_axes("Hidden judge (what we wanted)", "KL to the SFT model (nats)",
             "mean gold score", ax_g)
    for i, (label, r) in enumerate(runs.items()):
        kl, proxy, gold = (smooth_curve(r[k], smooth) for k in ("kl", "proxy", "gold"))
        ax_p.plot(kl, proxy, color=f"C{i}", lw=1.5, label=label)
        ax_g.plot(kl, gold, color=f"C{i}", lw=1.5, label=label)
    if best_of_n is not None:
        ax_p.plot(best_of_n["kl"], best_of_n["proxy"], "k^--", ms=4, lw=1, label="best-of-n")
        ax_g.plot(best_of_n["kl"], best_of_n["gold"], "k^--", ms=4, lw=1, label="best-of-n")
    ax_p.legend(fontsize=8)
    ax_g.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def smooth_curve(values: Sequence[float], k: int) -> list[float]:
    if k <= 1:
        return list(values)
    out = []
    for i in range(len(values)):
        window = values[max(0, i - k + 1): i + 1]
        out.append(sum(window) / len(window))
    return out


def rollout_table(rollout: Rollout, advantages, tokenizer, row: int = 0, kl_coef: float = 0.05
                  ) -> str:
    """One response of a rollout, token by token: log-probs, KL penalty, reward, value,
    advantage (a text table)."""
    rewards = token_rewards(rollout, kl_coef)[row]
    n = int(rollout.response_mask[row].sum())
    ids = rollout.ids[row, rollout.prompt_width: rollout.prompt_width + n].tolist()
    lines = [f"Q: {rollout.examples[row].question}",
             f"response: {rollout.responses[row]!r}   "
             f"reward-model score {float(rollout.proxy[row]):+.2f}",
             f"{'token':>14} {'log pi':>7} {'log ref':>7} {'-beta*KL':>8} {'reward':>7} "
             f"{'value':>6} {'advant.':>7}"]
    for j, t in enumerate(ids):
        kl = float(rollout.logprobs[row, j] - rollout.ref_logprobs[row, j])
        lines.append(f"{tokenizer.decode([t])!r:>14} {float(rollout.logprobs[row, j]):7.2f} "
                     f"{float(rollout.ref_logprobs[row, j]):7.2f} {-kl_coef * kl:8.3f} "
                     f"{float(rewards[j]):7.3f} {float(rollout.values[row, j]):6.2f} "
                     f"{float(advantages[row, j]):7.2f}")
    return "\n".join(lines)


def ppo_playground(policy, reward_model, tokenizer, examples, questions, max_steps: int = 40,
                   batch_size: int = 32, seed: int = 0, device: str = "cpu") -> Playground:
    """KL coefficient, clip range, learning rate and steps; a Run button trains a fresh copy
    of ``policy`` and shows its answers (greedy) to ``questions`` before and after."""
    before = answer(policy, tokenizer, [q.question for q in questions])
    state = {}

    def run(kl_coef, clip_eps, lr, steps):
        if steps > max_steps:
            raise ValueError(f"at most {max_steps} steps here (each takes a second or so)")
        model = copy.deepcopy(policy)
        cfg = PPOConfig(steps=steps, batch_size=batch_size, kl_coef=kl_coef, clip_eps=clip_eps,
                        lr=lr, critic_warmup=min(3, steps - 1), seed=seed, device=device)
        trainer = PPOTrainer(model, tokenizer, examples,
                             reward_model_scorer(reward_model, tokenizer), cfg,
                             reward_model=reward_model, gold_fn=gold_scorer())
        history = trainer.fit()
        after = answer(model, tokenizer, [q.question for q in questions])
        state.update(history=history, after=after)
        fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
        for ax, key in zip(axes, ("proxy", "gold", "kl")):
            new_axes(dict(PANELS)[key], "PPO step", "", ax)
            ax.plot(history.step, getattr(history, key))
            ax.title.set_fontsize(9)
        fig.tight_layout()
        lines = [f"{q.question}\n   before: {b}\n   after:  {a}"
                 for q, b, a in zip(questions, before, after)]
        return fig, "\n".join(lines)

    panel = Playground(run, {
        "kl_coef": slider(0.05, 0.0, 0.5, 0.01, "KL coefficient"),
        "clip_eps": slider(0.2, 0.05, 0.5, 0.05, "clip range"),
        "lr": slider(2e-5, -6, -3.7, 0.1, "learning rate", log=True),  # 1e-6 .. 2e-4
        "steps": slider(10, 1, max_steps, 1, "steps")},
        title="PPO playground", run_button=True, run_now=False)
    panel.state = state
    return panel


def dpo_playground(policy, tokenizer, train_pairs, questions, max_steps: int = 60,
                   seed: int = 0, device: str = "cpu") -> Playground:
    """beta and learning rate (and steps); Run trains a fresh copy with DPO and shows its
    answers (greedy) to ``questions`` before and after, and the loss curve.

    ``train_pairs`` as ``alignment.run_dpo`` takes them: encoded once, each Run starts sooner.
    """
    before = answer(policy, tokenizer, [q.question for q in questions])
    state = {}

    def run(beta, lr, steps):
        if steps > max_steps:
            raise ValueError(f"at most {max_steps} steps here")
        model = copy.deepcopy(policy)
        history = run_dpo(model, tokenizer, train_pairs, steps=steps, beta=beta, lr=lr,
                          seed=seed, device=device)
        after = answer(model, tokenizer, [q.question for q in questions])
        state.update(history=history, after=after)
        ax = new_axes("DPO loss", "step", "loss (nats/pair)", figsize=(5, 2.8))
        ax.plot(history.steps, history.loss)
        ax.axhline(0.6931, color="gray", ls=":", label="ln 2 (policy = reference)")
        ax.legend(fontsize=8)
        ax.figure.tight_layout()
        lines = [f"{q.question}\n   before: {b}\n   after:  {a}"
                 for q, b, a in zip(questions, before, after)]
        return ax.figure, "\n".join(lines)

    panel = Playground(run, {
        "beta": slider(0.1, -2, 0, 0.1, "beta", log=True),  # 0.01 .. 1
        "lr": slider(5e-5, -6, -3.3, 0.1, "learning rate", log=True),  # 1e-6 .. 5e-4
        "steps": slider(30, 1, max_steps, 1, "steps")},
        title="DPO playground", run_button=True, run_now=False)
    panel.state = state
    return panel

