"""Pictures and the playground of chapter 14 (chain of thought).

* ``compare_formats``: one fair experiment: the same problems, model and steps,
  trained once per answer format; results are kept, so asking again with the
  same settings (the playground's first draw) costs nothing;
* ``loss_plot``, ``digit_plot``: training loss per format; the share of right
  digits at each place of the answer;
* ``cot_playground``: sliders for digits, training problems and steps; a button
  trains every format and shows their held-out accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import matplotlib.pyplot as plt

from ..align.reasoning import (
    FORMATS,
    CoTConfig,
    Problem,
    digit_accuracy,
    is_correct,
    solve,
    split_problems,
    train_adder,
)
from ..core.train import History
from .plots import new_axes
from .widgets import Playground, slider

FORMAT_LABELS = {"answer": "final answer only", "reversed": "answer reversed",
                 "steps": "steps written out"}
FORMAT_COLORS = {"answer": "C3", "reversed": "C1", "steps": "C2"}


@dataclass
class FormatResult:
    """One trained model of ``compare_formats`` and how it did on the held-out problems."""

    fmt: str
    model: object
    history: History
    completions: list[str]  # one per held-out problem
    accuracy: float  # share of held-out problems with the right sum
    train_accuracy: float  # the same on (up to 200 of) its training problems


_results: dict[tuple, dict[str, FormatResult]] = {}


def compare_formats(digits: int, n_train: int, n_test: int = 500,
                    config: CoTConfig | None = None) -> dict[str, FormatResult]:
    """Train one model per format on the same ``n_train`` problems; test on ``n_test`` others.

    Returns {format: FormatResult} for every format of ``reasoning.FORMATS``. Results are
    cached by their settings.
    """
    config = config or CoTConfig()
    key = (digits, n_train, n_test, *asdict(config).values())
    if key not in _results:
        train, test = split_problems(n_train, n_test, digits, seed=config.seed)
        out = {}
        for fmt in FORMATS:
            model, history = train_adder(train, fmt, config)
            completions = solve(model, test)
            seen = train[:200]
            out[fmt] = FormatResult(
                fmt, model, history, completions,
                sum(is_correct(p, c) for p, c in zip(test, completions)) / len(test),
                sum(is_correct(p, c) for p, c in zip(seen, solve(model, seen))) / len(seen))
        _results[key] = out
    return _results[key]


def loss_plot(histories: dict[str, History], ax=None):
    """Training loss (nats per written token) per format against optimizer steps."""
    ax = new_axes("Training loss", "optimizer step", "loss (nats per written token)", ax=ax)
    for fmt, h in histories.items():
        ax.plot(h.steps, h.loss, color=FORMAT_COLORS.get(fmt), label=FORMAT_LABELS.get(fmt, fmt))
    ax.set_yscale("log")
    ax.legend()
    return ax


def digit_plot(problems: list[Problem], completions: dict[str, list[str]], ax=None):
    """Share of right digits at each place of the answer, for each format."""
    width = problems[0].digits + 1
    places = [f"10^{width - 1 - k}" for k in range(width)]
    ax = new_axes("Which digits of the sum are right?", "place in the answer (left: highest)",
                  "share of held-out problems", ax=ax)
    bar = 0.8 / max(1, len(completions))
    for i, (fmt, comps) in enumerate(completions.items()):
        shares = digit_accuracy(problems, comps)
        ax.bar([k + (i - (len(completions) - 1) / 2) * bar for k in range(width)], shares, bar,
               color=FORMAT_COLORS.get(fmt), label=FORMAT_LABELS.get(fmt, fmt))
    ax.set_xticks(range(width), places)
    ax.axhline(0.1, color="gray", ls=":", label="a random digit (10%)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    return ax


def _experiment_view(digits: int, n_train: int, steps: int, config: CoTConfig,
                     n_test: int):
    space = 10 ** (2 * digits)  # different problems with this many digits
    n_test = min(n_test, space // 5)
    n_train = min(n_train, space - n_test)
    results = compare_formats(digits, n_train, n_test, CoTConfig(**{**asdict(config),
                                                                    "steps": steps}))
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    names = [FORMAT_LABELS[f] for f in FORMATS]
    test = [results[f].accuracy for f in FORMATS]
    train = [results[f].train_accuracy for f in FORMATS]
    places = list(range(len(FORMATS)))
    ax.bar([x - 0.2 for x in places], train, 0.4, color="lightgray", label="training problems")
    ax.bar([x + 0.2 for x in places], test, 0.4, color=[FORMAT_COLORS[f] for f in FORMATS],
           label="held-out problems")
    ax.set_xticks(places, names)
    ax.set(ylim=(0, 1.05), ylabel="share answered right",
           title=f"{digits}-digit sums, {n_train} training problems, {steps} steps")
    ax.legend(fontsize=8)
    fig.tight_layout()
    example = split_problems(n_train, n_test, digits, seed=config.seed)[1][0]
    text = "\n".join(
        f"{FORMAT_LABELS[f]:>18}: held-out {results[f].accuracy:6.1%}, training "
        f"{results[f].train_accuracy:6.1%}   e.g. {example.prompt}{results[f].completions[0]}"
        for f in FORMATS)
    return fig, text


def cot_playground(config: CoTConfig | None = None, digits: int = 4, n_train: int = 500,
                   n_test: int = 500) -> Playground:
    """Digits, training problems and steps; the Run button trains every format (seconds)."""
    config = config or CoTConfig()
    controls = {"digits": slider(digits, 1, 6, 1, "digits per number"),
                "n_train": slider(n_train, 50, 3000, 50, "training problems"),
                "steps": slider(config.steps, 50, 1000, 50, "steps")}
    view = lambda digits, n_train, steps: _experiment_view(  # noqa: E731
        digits, n_train, steps, config, n_test)
    return Playground(view, controls, title="Final answers, reversed answers, written-out steps",
                      run_button=True)
