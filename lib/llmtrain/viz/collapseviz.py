"""Pictures and the playground of chapter 15 (model collapse).

* ``gaussian_plot``: the fitted spread of a normal distribution refitted to its
  own samples, generation after generation, with and without real data;
* ``chain_plot``: four panels, one line per chain of generations: loss on real
  held-out text, distinct 3-grams and vocabulary of the corpus each generation
  wrote, and how many facts about rare and common people it still recalls;
* ``collapse_playground``: sliders for the share of real data, generations and
  sampling temperature; a button runs the chain (a few seconds per generation).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from ..data.collapse import CollapseConfig, CollapseLab, CorpusStats, Generation
from .plots import new_axes
from .widgets import Playground, slider


def gaussian_plot(sds: dict[str, torch.Tensor], ax=None):
    """Median and middle 80% of the fitted standard deviation per generation (log scale)."""
    ax = new_axes("A normal distribution refitted to its own samples", "generation",
                  "fitted standard deviation (true: 1)", ax=ax)
    for i, (label, sd) in enumerate(sds.items()):
        x = range(sd.shape[1])
        lo, mid, hi = (sd.quantile(q, dim=0) for q in (0.1, 0.5, 0.9))
        ax.plot(x, mid, color=f"C{i}", label=f"{label} (median; band: middle 80%)")
        ax.fill_between(x, lo, hi, color=f"C{i}", alpha=0.2)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return ax


def chain_plot(chains: dict[str, Sequence[Generation]], real: CorpusStats | None = None,
               guess: tuple[float, float] | None = None):
    """Four panels against the generation; one line per chain (label -> generations).

    ``real``: the real corpus's stats, drawn as reference lines; ``guess``: the
    (rare, common) fact recall of a model that knows nobody
    (``CollapseLab.guess_recall``).
    """
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    n = next(iter(chains.values()))[0].stats.n_words
    panels = [
        ("Loss on real held-out text", "nats per token", lambda g: g.heldout_loss, None),
        ("Distinct word 3-grams written", f"different 3-grams in {n:,} words",
         lambda g: g.stats.distinct_3grams, real and real.distinct_3grams),
        ("Vocabulary used", f"different words in {n:,} words",
         lambda g: g.stats.vocabulary, real and real.vocabulary),
        ("Facts it can still complete", "share of fact prompts", None, None),
    ]
    for ax, (title, ylabel, value, reference) in zip(axes.flat, panels):
        new_axes(title, "generation", ylabel, ax=ax)
        for i, (label, chain) in enumerate(chains.items()):
            xs = [g.index for g in chain]
            if value is None:
                ax.plot(xs, [g.common_recall for g in chain], "o-", color=f"C{i}",
                        label=f"{label}: common people")
                ax.plot(xs, [g.rare_recall for g in chain], "s--", color=f"C{i}",
                        label=f"{label}: rare people")
                ax.set_ylim(0, 1)
                if guess is not None and i == 0:
                    ax.axhline(guess[1], color="gray", ls=":", lw=1.5,
                               label="guessing the commonest value: common people")
                    ax.axhline(guess[0], color="gray", ls="--", lw=1,
                               label="guessing: rare people")
            else:
                ax.plot(xs, [value(g) for g in chain], "o-", color=f"C{i}", label=label)
        if reference:
            ax.axhline(reference, color="gray", ls=":", label="the real corpus")
        ax.legend(fontsize=7)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def chain_table(chain: Sequence[Generation]) -> str:
    """One line per generation: the numbers behind ``chain_plot``."""
    lines = [f"{'gen':>3} {'real':>5} {'loss':>6} {'3-grams':>8} {'words':>6} {'people':>6} "
             f"{'true sent.':>10} {'recall rare':>11} {'common':>7}"]
    for g in chain:
        s = g.stats
        lines.append(f"{g.index:>3} {g.real_share:>5.0%} {g.heldout_loss:>6.2f} "
                     f"{s.distinct_3grams:>8} {s.vocabulary:>6} {s.people:>6} "
                     f"{s.true_sentences:>10.0%} {g.rare_recall:>11.0%} {g.common_recall:>7.0%}")
    return "\n".join(lines)


def collapse_playground(lab: CollapseLab, config: CollapseConfig | None = None,
                        real_share: float = 0.0, generations: int = 5) -> Playground:
    """Share of real data, generations and temperature; Run trains the chain."""
    config = config or CollapseConfig()
    controls = {"real_share": slider(real_share, 0.0, 0.9, 0.1, "share of real data"),
                "generations": slider(generations, 2, 8, 1, "generations"),
                "temperature": slider(config.temperature, 0.5, 1.2, 0.05, "temperature")}

    def view(real_share, generations, temperature):
        cfg = CollapseConfig(**{**vars(config), "temperature": round(temperature, 2)})
        chain = lab.run(round(real_share, 2), generations, cfg)
        fig = chain_plot({f"{real_share:.0%} real, T = {temperature:.2f}": chain},
                         lab.stats(lab.real, cfg.word_budget), guess=lab.guess_recall())
        last = chain[-1].corpus[0] if chain[-1].corpus else ""
        return fig, chain_table(chain) + f"\nlast generation writes: {last[:160]}"

    return Playground(view, controls, title="Generations of synthetic data", run_button=True)
