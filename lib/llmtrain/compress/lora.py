"""LoRA: fine-tuning a model by training small low-rank matrices next to frozen weights.

Hu et al. (2021): instead of changing a weight W (out x in), learn a change
of low rank r, written as a product of two thin matrices,

    W' = W + (alpha / r) * B @ A,   A: (r, in),  B: (out, r),

and train only A and B. ``B`` starts at zero, so the adapted model starts out
computing exactly what the base model did; ``A`` starts random (Kaiming-uniform,
as in the reference implementation), so the gradient of B is not zero.
``alpha / r`` keeps the size of the update comparable across ranks.

The adapter adds r * (in + out) parameters to a layer of in * out: for a
4096 x 4096 layer and r = 8, 65,536 instead of 16.8 million (0.4%).

After training the update can be **merged** into W (``merge``): the model is
then as fast as the base and computes the same outputs as the adapted one. The
adapters can also stay separate and be saved alone (``save_adapters``): a few
hundred kilobytes instead of a whole model, one per task.

QLoRA (Dettmers et al., 2023) is LoRA whose frozen base layer is quantized
(``quant.QuantLinear``, NF4): the base is dequantized on the fly in ``forward``
and only the adapters, in full precision, get gradients.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .quant import QuantLinear

ADAPTER_FILE, CONFIG_FILE = "adapters.safetensors", "adapters.json"


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update.

    forward: x (..., in_features) -> base(x) + (alpha / r) * dropout(x) @ A.T @ B.T,
    shape (..., out_features). ``base`` is an ``nn.Linear`` or a ``quant.QuantLinear``
    (QLoRA); its parameters are frozen here.
    """

    def __init__(self, base: nn.Module, r: int, alpha: float, dropout: float = 0.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(base, (nn.Linear, QuantLinear)):
            raise TypeError(f"LoRA wraps an nn.Linear or a quant.QuantLinear, got "
                            f"{type(base).__name__}")
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"rank r must be a positive whole number, got {r!r}")
        if r > min(base.in_features, base.out_features):
            raise ValueError(f"rank r={r} is larger than the layer allows "
                             f"(min(in, out) = {min(base.in_features, base.out_features)})")
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a positive number, got {alpha!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.base, self.r, self.alpha = base, r, float(alpha)
        self.scaling = self.alpha / r
        for p in base.parameters():
            p.requires_grad_(False)
        device = _device_of(base)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=device))
        bound = 1 / math.sqrt(base.in_features)  # kaiming_uniform_(a=sqrt(5)), as nn.Linear
        with torch.no_grad():
            rand = torch.rand(self.lora_A.shape, generator=generator)
            self.lora_A.copy_((rand * 2 - 1) * bound)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update (alpha / r) * B @ A, shaped like the base weight (out, in)."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        # (..., in) -> (..., r) -> (..., out): never builds the full (out, in) update
        return y + self.scaling * (self.dropout(x) @ self.lora_A.T @ self.lora_B.T)

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into the base weight; forward then skips the adapter."""
        if self.merged:
            return
        if not isinstance(self.base, nn.Linear):
            raise TypeError("cannot merge into a quantized base layer: dequantize it first "
                            "(lora.dequantize_base) or keep the adapter separate")
        self.base.weight += self.delta_weight().to(self.base.weight.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again: the base weight is the original (up to rounding)."""
        if not self.merged:
            return
        self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
        self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, merged={self.merged}"


def _device_of(module: nn.Module) -> torch.device:
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


# --- applying LoRA to a model ----------------------------------------------------------
@dataclass(frozen=True)
class LoRAReport:
    """What ``apply_lora`` did: which layers got adapters, and how many parameters train."""

    targets: tuple[str, ...]
    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total

    def __str__(self) -> str:
        return (f"{len(self.targets)} layers adapted; {self.trainable:,} trainable of "
                f"{self.total:,} parameters ({self.fraction:.2%})")


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, a tied tensor counted once.

    The weights of quantized layers (``quant.QuantLinear``, stored as buffers of
    codes) count as frozen parameters: they are still the model's weights.
    """
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    total += sum(m.qweight.numel for m in model.modules() if isinstance(m, QuantLinear))
    return trainable, total


def adaptable_names(model: nn.Module) -> list[str]:
    """Names of the layers LoRA can wrap: linear layers (plain or quantized) not tied to
    an embedding."""
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return [n for n, m in model.named_modules()
            if isinstance(m, QuantLinear)
            or (isinstance(m, nn.Linear) and id(m.weight) not in embedded
                and not n.endswith(".base"))]


def apply_lora(model: nn.Module, targets: Sequence[str] | str, r: int = 8, alpha: float = 16,
               dropout: float = 0.0, seed: int = 0) -> LoRAReport:
    """Freeze ``model`` and wrap the chosen linear layers in ``LoRALinear``, in place.

    ``targets``: patterns matched against the end of each adaptable layer's name
    (``adaptable_names``), e.g. ``["attn.qkv", "attn.proj"]``, ``["mlp.fc"]``, or
    ``"all"``. Every parameter outside the adapters is frozen. Returns a
    ``LoRAReport`` with the adapted layers and the trainable share.
    """
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("the model already has LoRA adapters: load a fresh model first")
    names = adaptable_names(model)
    if targets == "all":
        chosen = names
    else:
        if isinstance(targets, str):
            targets = [targets]
        chosen = [n for n in names if any(n == t or n.endswith("." + t) for t in targets)]
        unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
        if unmatched:
            raise ValueError(f"no adaptable layer matches {unmatched}; the layers are: "
                             f"{_short_names(names)}")
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    for name in chosen:
        parent, _, child = name.rpartition(".")
        layer = LoRALinear(modules[name], r, alpha, dropout, generator=generator)
        setattr(modules[parent] if parent else model, child, layer)
    trainable, total = count_parameters(model)
    return LoRAReport(tuple(chosen), trainable, total)


def _short_names(names: list[str]) -> list[str]:
    """The distinct layer kinds, e.g. ['attn.qkv', 'attn.proj', 'mlp.fc', 'mlp.proj']."""
    return list(dict.fromkeys(re.sub(r"^.*?\d+\.", "", n) for n in names))


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every adapter into its base weight and put the plain layers back, in place.

    The result has the base model's architecture (no adapters left) and computes
    what the adapted model computed.
    """
    modules = dict(model.named_modules())
    for name, layer in lora_layers(model).items():
        layer.merge()
        parent, _, child = name.rpartition(".")
        setattr(modules[parent] if parent else model, child, layer.base)
    return model


def dequantize_base(model: nn.Module) -> nn.Module:
    """Replace quantized base layers under the adapters by float32 ones, so they can merge."""
    for layer in lora_layers(model).values():
        if isinstance(layer.base, QuantLinear):
            layer.base = layer.base.to_linear().requires_grad_(False)
    return model


def set_adapters_enabled(model: nn.Module, enabled: bool) -> None:
    """Switch all (unmerged) adapters off or on: off, the model is its base again."""
    for layer in lora_layers(model).values():
        if layer.merged:
            raise ValueError("the adapters are merged: unmerge them first")
        layer.scaling = layer.alpha / layer.r if enabled else 0.0


# --- saving adapters on their own ------------------------------------------------------
def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors: {"<layer>.lora_A": (r, in), "<layer>.lora_B": (out, r)}."""
    out = {}
    for name, layer in lora_layers(model).items():
        out[f"{name}.lora_A"] = layer.lora_A.detach().cpu().contiguous()
        out[f"{name}.lora_B"] = layer.lora_B.detach().cpu().contiguous()
    return out


def save_adapters(model: nn.Module, folder: str | Path) -> Path:
    """Write the adapters (safetensors) and their settings (JSON) to ``folder``."""
    from safetensors.torch import save_file

    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA adapters to save (use apply_lora first)")
    if any(layer.merged for layer in layers.values()):
        raise ValueError("the adapters are merged into the weights: unmerge them before saving")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state_dict(model), str(folder / ADAPTER_FILE))
    first = next(iter(layers.values()))
    config = {"targets": list(layers), "r": first.r, "alpha": first.alpha}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    return folder


def load_adapters(model: nn.Module, folder: str | Path) -> LoRAReport:
    """Add the adapters saved in ``folder`` to a fresh copy of their base model, in place."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / ADAPTER_FILE).exists() or not (folder / CONFIG_FILE).exists():
        raise FileNotFoundError(f"no saved adapters in {folder}: expected {ADAPTER_FILE} and "
                                f"{CONFIG_FILE} (written by save_adapters)")
    config = json.loads((folder / CONFIG_FILE).read_text())
    report = apply_lora(model, config["targets"], r=config["r"], alpha=config["alpha"])
    tensors = load_file(str(folder / ADAPTER_FILE))
    layers = lora_layers(model)
    for name, layer in layers.items():
        a, b = tensors[f"{name}.lora_A"], tensors[f"{name}.lora_B"]
        if a.shape != layer.lora_A.shape or b.shape != layer.lora_B.shape:
            raise ValueError(f"the adapters in {folder} do not fit this model (layer {name}): "
                             "were they trained on another base model?")
        with torch.no_grad():
            layer.lora_A.copy_(a)
            layer.lora_B.copy_(b)
    return report


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor the optimizer keeps (AdamW: two moments per trained weight)."""
    return sum(t.nbytes for state in optimizer.state.values() for t in state.values()
               if isinstance(t, torch.Tensor))


def lora_parameter_count(shapes: Sequence[tuple[int, int]], r: int) -> int:
    """Adapter parameters for layers of the given (out, in) shapes at rank r: r * (in + out)."""
    return sum(r * (out + inp) for out, inp in shapes)
