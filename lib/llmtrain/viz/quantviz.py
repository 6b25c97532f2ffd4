"""Measurements, pictures and the playground of chapter 10 (quantization).

* ``evaluate_schemes``: quantize a model under several configs and measure, for
  each, the stored bits per weight, the bytes and the held-out loss;
* ``error_histograms``: how the rounding errors of one weight matrix are spread;
* ``group_size_sweep`` and ``group_size_plot``: error against group size;
* ``bits_loss_plot``: held-out loss against measured bits per weight;
* ``code_levels_plot``: where NF4's 16 values sit compared with int4's;
* ``quant_playground``: scheme, bits and group size as controls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from ..compress.quant import (
    NF4_CODE,
    QuantConfig,
    QuantLinear,
    linear_names,
    model_nbytes,
    quantization_error,
    quantize,
    quantize_model,
)
from ..core.batches import evaluate_loss
from .plots import new_axes
from .widgets import Playground, slider


@dataclass(frozen=True)
class SchemeResult:
    """One quantized model: label, bits per quantized weight (measured, scales included),
    bytes of its quantized layers and of the whole model, held-out loss (nats/token)."""
    label: str
    bits_per_weight: float
    layer_bytes: int
    model_bytes: int
    loss: float

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


def evaluate_schemes(model, configs: Sequence[QuantConfig], tokens: torch.Tensor,
                     max_windows: int = 64) -> list[SchemeResult]:
    """The full-precision model first (label "fp32"), then one row per config."""
    rows = []
    fp32_layers = sum(m.weight.nbytes for m in _linear_layers(model))
    n_weights = sum(m.weight.numel() for m in _linear_layers(model))
    rows.append(SchemeResult("fp32", 32.0, fp32_layers, model_nbytes(model),
                             evaluate_loss(model, tokens, max_windows=max_windows)))
    for cfg in configs:
        qm = quantize_model(model, cfg)
        layer_bytes = sum(m.qweight.nbytes for m in qm.modules() if isinstance(m, QuantLinear))
        rows.append(SchemeResult(cfg.label, 8 * layer_bytes / n_weights, layer_bytes,
                                 model_nbytes(qm), evaluate_loss(qm, tokens,
                                                                 max_windows=max_windows)))
    return rows


def _linear_layers(model):

    modules = dict(model.named_modules())
    return [modules[n] for n in linear_names(model)]


def error_histograms(w: torch.Tensor, configs: Sequence[QuantConfig], ax=None, bins: int = 80,
                     title: str = "Rounding errors of one weight matrix"):
    """Overlaid histograms of dequantized minus original weights, one per config."""
    errors = {cfg.label: (quantize(w, cfg).dequantize() - w.float()).flatten()
              for cfg in configs}
    lim = max(float(e.abs().max()) for e in errors.values())
    ax = new_axes(title, "error (dequantized - original weight)", "weights (log scale)", ax=ax)
    edges = torch.linspace(-lim, lim, bins + 1)
    for label, e in errors.items():
        rms = float(e.pow(2).mean().sqrt())
        ax.hist(e.numpy(), bins=edges.numpy(), histtype="step", lw=1.5,
                label=f"{label} (rms {rms:.4f})")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return ax.figure


def group_size_sweep(w: torch.Tensor, schemes: Sequence[tuple[str, int]],
                     group_sizes: Sequence[int]) -> dict[str, list[tuple[int, float, float]]]:
    """For each (scheme, bits): [(group_size, mse, bits_per_weight)] over ``group_sizes``."""
    out = {}
    for scheme, bits in schemes:
        label = QuantConfig(scheme, bits, "group").label.rsplit(" ", 1)[0]
        rows = []
        for g in group_sizes:
            e = quantization_error(w, QuantConfig(scheme, bits, "group", g))
            rows.append((g, e["mse"], e["bits_per_weight"]))
        out[label] = rows
    return out


def group_size_plot(sweep: dict[str, list[tuple[int, float, float]]], title: str = ""):
    """Mean squared error against group size (log-log), bits per weight annotated."""
    ax = new_axes(title or "Smaller groups, smaller errors", "group size (weights per scale)",
                  "mean squared error")
    for label, rows in sweep.items():
        ax.plot([g for g, _, _ in rows], [m for _, m, _ in rows], "o-", label=label)
    first = next(iter(sweep.values()))
    for g, m, b in first:
        ax.annotate(f"{b:.2f} b/w", (g, m), fontsize=7, textcoords="offset points",
                    xytext=(0, 6), ha="center")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def bits_loss_plot(rows: Sequence[SchemeResult], title: str = "Held-out loss against bits"):
    """Each quantized model as a point: measured bits per weight -> held-out loss."""
    ax = new_axes(title, "bits per quantized weight (measured, scales included)",
                  "held-out loss (nats/token)", figsize=(7, 4))
    reference = rows[0]
    ax.axhline(reference.loss, color="gray", ls="--", label=f"{reference.label} "
               f"({reference.loss:.3f})")
    for i, r in enumerate(rows[1:]):
        marker = "s" if "NF4" in r.label else ("^" if "zeropoint" in r.label else "o")
        ax.plot([r.bits_per_weight], [r.loss], marker, ms=7, color=plt.cm.tab20(i % 20),
                label=r.label)
    ax.set_yscale("log")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    ax.figure.tight_layout()
    return ax.figure


def code_levels_plot(ax=None):
    """The 16 values of NF4 against the 15 of absmax int4, on [-1, 1]."""
    ax = new_axes("Where the 4-bit codes sit", "value (times the block's absmax)", "", ax=ax,
                  figsize=(7, 2.2))
    int4 = torch.arange(-7, 8) / 7
    ax.plot(int4, [1] * len(int4), "|", ms=18, mew=2, label="int4 absmax (15 evenly spaced)")
    ax.plot(NF4_CODE, [0] * 16, "|", ms=18, mew=2, color="C3",
            label="NF4 (16 normal quantiles)")
    ax.set_yticks([0, 1], ["NF4", "int4"])
    ax.set_ylim(-0.8, 1.8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.figure.tight_layout()
    return ax.figure


GROUP_CHOICES = ("tensor", "channel", 16, 32, 64, 128, 256, 1024)


def quant_playground(model, tokens: torch.Tensor, layer: str, max_windows: int = 16,
                     scheme: str = "absmax", bits: int = 4, group="channel") -> Playground:
    """Pick a scheme, bits and a group size; see the error histogram of ``layer`` and the
    held-out loss of the whole quantized model (``max_windows`` windows of 128 tokens)."""
    modules = dict(model.named_modules())
    if layer not in modules or not hasattr(modules[layer], "weight"):
        raise ValueError(f"{layer!r} is not a layer with a weight in this model")
    w = modules[layer].weight.detach().cpu()
    fp32 = evaluate_loss(model, tokens, max_windows=max_windows)

    def run(scheme: str, bits: int, group):
        if scheme == "nf4" and bits != 4:
            raise ValueError("NF4 is a 4-bit code: set bits to 4")
        granularity = group if isinstance(group, str) else "group"
        cfg = QuantConfig(scheme, bits, granularity, group if isinstance(group, int) else 64)
        loss = evaluate_loss(quantize_model(model, cfg), tokens, max_windows=max_windows)
        fig, ax = plt.subplots(figsize=(6, 3))
        error_histograms(w, [cfg], ax=ax, title=f"{layer}: {cfg.label}")
        fig.tight_layout()
        q = quantize(w, cfg)
        return fig, (f"{cfg.label}: {q.bits_per_weight:.2f} bits per weight in {layer}; "
                     f"held-out loss {loss:.4f} nats/token (fp32 {fp32:.4f}, "
                     f"{100 * (loss / fp32 - 1):+.1f}%)")

    controls = {
        "scheme": W.Dropdown(options=["absmax", "zeropoint", "nf4"], value=scheme,
                             description="scheme"),
        "bits": slider(bits, 2, 8, 1, "bits"),
        "group": W.Dropdown(options=list(GROUP_CHOICES), value=group, description="scales per"),
    }
    return Playground(run, controls, title="Quantize the base model")
