"""Quantization: storing weights in fewer bits, and what it costs the model.

A weight matrix is split into groups (the whole tensor, one row = one output
channel, or blocks of ``group_size`` consecutive weights), and each group gets
its own scale. Every weight is then replaced by a small integer *code*:

* **absmax** (symmetric): scale = max|w| / (2^(b-1) - 1), code = round(w / scale);
  zero maps exactly to zero, the range is symmetric around it;
* **zero-point** (asymmetric): the range [min, max] is mapped onto 0 .. 2^b - 1
  with a scale and an integer offset (the code that stands for 0.0), so
  one-sided data (all weights positive, say) wastes no codes;
* **NF4** (QLoRA, Dettmers et al. 2023): 16 fixed values placed at quantiles of
  a normal distribution (``NF4_CODE``), scaled by each block's absmax. Weights
  are roughly normal, so equally likely codes fit them better than evenly
  spaced ones. Optional **double quantization** stores the block scales
  themselves in 8 bits (QLoRA quantizes them with 8-bit floats; here they are
  8-bit absmax integers in blocks of 256, the same size).

Codes are really packed: 4-bit codes two to a byte, 2-bit codes four to a
byte, 3-bit codes as a bit stream. So ``QuantizedTensor.nbytes`` is the real
size of the tensors that hold the weight, scales included, and memory figures
are measured, not computed.

``QuantLinear`` is a linear layer that keeps only the packed weight and
dequantizes it on the fly in ``forward``; ``quantize_model`` swaps it in for a
model's linear layers. ``int8_matmul`` is the LLM.int8() matrix product
(Dettmers et al. 2022): both operands in int8, with the outlier feature columns
of the input optionally kept in full precision (mixed-precision decomposition).

Tensor shapes: a weight is (out_features, in_features); groups are viewed as
(G, L): G groups of L weights each.

Why one module of about 520 lines: every scheme shares the quantized tensor
and its packing, and chapter 10 compares them on one layer at a time.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

SCHEMES = ("absmax", "zeropoint", "nf4")
GRANULARITIES = ("tensor", "channel", "group")
DOUBLE_QUANT_BLOCK = 256  # scales per block when the scales are quantized again (QLoRA's size)


def normal_float_code(offset: float = 0.9677083) -> torch.Tensor:
    """Build the 4-bit NormalFloat code from quantiles of the standard normal: (16,).

    Eight positive and seven negative quantiles of N(0, 1), taken at evenly
    spaced probabilities from ``offset`` towards 0.5, plus an exact zero, all
    divided by the largest so the code spans [-1, 1]. The asymmetry (8 vs 7)
    gives zero its own code. ``offset`` is QLoRA's choice, which keeps the
    outermost quantiles finite.
    """
    probs = torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1]
    probs_neg = torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1]
    values = torch.cat([torch.special.ndtri(probs), torch.zeros(1, dtype=torch.float64),
                        -torch.special.ndtri(probs_neg)])
    values = values.sort().values
    return (values / values.max()).float()


# The code as published with QLoRA (and used by bitsandbytes), to float32 precision.
NF4_CODE = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0])


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize a tensor.

    scheme: "absmax", "zeropoint" or "nf4" (NF4 is always 4 bits);
    bits: 2 .. 8 bits per code;
    granularity: one scale per "tensor", per "channel" (row) or per "group";
    group_size: weights per group (granularity "group"), 8 .. 4096;
    double_quant: store the scales in 8 bits too (only with "group").
    """

    scheme: str = "absmax"
    bits: int = 8
    granularity: str = "channel"
    group_size: int = 64
    double_quant: bool = False

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 2 <= self.bits <= 8:
            raise ValueError(f"bits must be a whole number from 2 to 8, got {self.bits!r}")
        if self.scheme == "nf4" and self.bits != 4:
            raise ValueError(f"NF4 is a 4-bit code: use bits=4 (got bits={self.bits})")
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"granularity must be one of {GRANULARITIES}, got {self.granularity!r}")
        if (isinstance(self.group_size, bool) or not isinstance(self.group_size, int)
                or not 8 <= self.group_size <= 4096):
            raise ValueError(f"group_size must be a whole number from 8 to 4096, "
                             f"got {self.group_size!r}")
        if self.double_quant and self.granularity != "group":
            raise ValueError("double_quant quantizes the scales of many small groups: use it "
                             "with granularity='group'")

    @property
    def label(self) -> str:
        """A short name, e.g. "int4 absmax g64", "NF4 g64 +DQ", "int8 absmax channel"."""
        name = "NF4" if self.scheme == "nf4" else f"int{self.bits} {self.scheme}"
        where = f"g{self.group_size}" if self.granularity == "group" else self.granularity
        return f"{name} {where}" + (" +DQ" if self.double_quant else "")


# --- packing codes into bytes -------------------------------------------------------
def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack unsigned codes (N,) in [0, 2^bits) into ceil(N * bits / 8) bytes (uint8).

    Codes are laid out least significant bit first: with 4 bits, code 2i sits
    in the low nibble of byte i and code 2i + 1 in its high nibble.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be from 1 to 8, got {bits}")
    codes = codes.reshape(-1).to(torch.int64)
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= 2 ** bits):
        raise ValueError(f"codes must be in [0, {2 ** bits}) to fit in {bits} bits")
    if bits == 8:
        return codes.to(torch.uint8)
    if 8 % bits == 0:  # 1, 2 or 4 bits: whole codes per byte, combined with shifts
        per_byte = 8 // bits
        padded = F.pad(codes, (0, -codes.numel() % per_byte)).view(-1, per_byte)
        shifts = torch.arange(per_byte, device=codes.device) * bits
        return (padded << shifts).sum(dim=1).to(torch.uint8)
    # any other width: a stream of bits, eight to a byte
    stream = (codes[:, None] >> torch.arange(bits, device=codes.device)) & 1  # (N, bits)
    stream = F.pad(stream.reshape(-1), (0, -stream.numel() % 8)).view(-1, 8)
    return (stream << torch.arange(8, device=codes.device)).sum(dim=1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """The inverse of ``pack_bits``: the first ``n`` codes, as int64 (n,)."""
    packed = packed.reshape(-1).to(torch.int64)
    if bits == 8:
        return packed[:n]
    mask = 2 ** bits - 1
    if 8 % bits == 0:
        shifts = torch.arange(8 // bits, device=packed.device) * bits
        return ((packed[:, None] >> shifts) & mask).reshape(-1)[:n]
    stream = ((packed[:, None] >> torch.arange(8, device=packed.device)) & 1).reshape(-1)
    stream = stream[: n * bits].view(n, bits)
    return (stream << torch.arange(bits, device=packed.device)).sum(dim=1)


# --- the quantized tensor ------------------------------------------------------------
@dataclass
class QuantizedTensor:
    """A weight stored as packed codes plus per-group scales (and zero points).

    codes: uint8, the packed codes of all G * L weights (padding included);
    scales: float32 (G,), or None when double quantized (then ``scale_codes``
    int8 (G,), ``scale_scales`` float32 (ceil(G / 256),) and ``scale_mean``
    float32 () hold them); zeros: uint8 (G,) for zero-point, else None.
    """

    codes: torch.Tensor
    scales: torch.Tensor | None
    zeros: torch.Tensor | None
    scale_codes: torch.Tensor | None
    scale_scales: torch.Tensor | None
    scale_mean: torch.Tensor | None
    shape: tuple[int, ...]
    config: QuantConfig

    TENSORS = ("codes", "scales", "zeros", "scale_codes", "scale_scales", "scale_mean")

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors that hold this weight (the ones that take memory)."""
        return {k: getattr(self, k) for k in self.TENSORS if getattr(self, k) is not None}

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of every tensor that stores the weight: codes, scales, zero points."""
        return sum(t.nbytes for t in self.tensors().values())

    @property
    def bits_per_weight(self) -> float:
        """Measured storage per weight, scales included (8 * nbytes / numel)."""
        return 8 * self.nbytes / self.numel

    def group_scales(self) -> torch.Tensor:
        """The scales (G,) as float32, rebuilt from their 8-bit codes if double quantized."""
        if self.scales is not None:
            return self.scales
        codes = self.scale_codes.float()
        n = codes.numel()
        blocks = F.pad(codes, (0, -n % DOUBLE_QUANT_BLOCK)).view(-1, DOUBLE_QUANT_BLOCK)
        return (blocks * self.scale_scales[:, None]).view(-1)[:n] + self.scale_mean

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight as a float tensor of the original shape."""
        cfg = self.config
        G = self.group_scales().numel()
        L = _group_length(self.shape, cfg)
        codes = unpack_bits(self.codes, cfg.bits, G * L).view(G, L)
        scales = self.group_scales()[:, None]
        if cfg.scheme == "nf4":
            values = NF4_CODE.to(codes.device)[codes] * scales
        elif cfg.scheme == "absmax":
            values = (codes - 2 ** (cfg.bits - 1)).float() * scales
        else:
            values = (codes - self.zeros[:, None].long()).float() * scales
        return values.reshape(-1)[: self.numel].view(self.shape).to(dtype)

    def to(self, device) -> QuantizedTensor:
        return replace(self, **{k: t.to(device) for k, t in self.tensors().items()})


def _group_length(shape: tuple[int, ...], config: QuantConfig) -> int:
    numel = math.prod(shape)
    if config.granularity == "tensor":
        return numel
    if config.granularity == "channel":
        return numel // shape[0] if len(shape) > 1 else numel
    return config.group_size


def _groups(w: torch.Tensor, config: QuantConfig) -> torch.Tensor:
    """The weight as (G, L) groups; the last group is padded with zeros if needed."""
    L = _group_length(tuple(w.shape), config)
    flat = w.reshape(-1)
    return F.pad(flat, (0, -flat.numel() % L)).view(-1, L)


def _config(config: QuantConfig | None, kwargs: dict) -> QuantConfig:
    if config is None:
        return QuantConfig(**kwargs)
    if not isinstance(config, QuantConfig):
        raise TypeError(f"config must be a QuantConfig, got {type(config).__name__}")
    return replace(config, **kwargs) if kwargs else config


def quantize(w: torch.Tensor, config: QuantConfig | None = None, **kwargs) -> QuantizedTensor:
    """Quantize a float tensor: ``quantize(w, scheme="nf4", bits=4, granularity="group")``.

    Pass a ``QuantConfig`` or its fields as keywords. Returns a
    ``QuantizedTensor``; ``.dequantize()`` gives the approximation back.
    """
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise TypeError("w must be a floating-point tensor (a weight matrix)")
    if w.numel() == 0:
        raise ValueError("w is empty: nothing to quantize")
    if not torch.isfinite(w).all():
        raise ValueError("w holds NaN or inf values: quantize a trained, finite weight")
    cfg = _config(config, kwargs)
    groups = _groups(w.detach().float(), cfg)  # (G, L)
    zeros = None
    if cfg.scheme == "zeropoint":
        levels = 2 ** cfg.bits - 1
        lo = groups.min(dim=1).values.clamp(max=0)  # the range always contains 0.0
        hi = groups.max(dim=1).values.clamp(min=0)
        scales = ((hi - lo) / levels).clamp(min=torch.finfo(torch.float32).tiny)
        zero = torch.round(-lo / scales).clamp(0, levels)
        codes = (torch.round(groups / scales[:, None]) + zero[:, None]).clamp(0, levels)
        zeros = zero.to(torch.uint8)
    else:
        absmax = groups.abs().max(dim=1).values
        if cfg.scheme == "nf4":
            scales = absmax.clamp(min=torch.finfo(torch.float32).tiny)
            code = NF4_CODE.to(w.device)
            midpoints = (code[1:] + code[:-1]) / 2
            codes = torch.bucketize(groups / scales[:, None], midpoints)  # nearest value
        else:
            qmax = 2 ** (cfg.bits - 1) - 1
            scales = (absmax / qmax).clamp(min=torch.finfo(torch.float32).tiny)
            q = torch.round(groups / scales[:, None]).clamp(-qmax, qmax)
            codes = q + 2 ** (cfg.bits - 1)  # stored without a sign: 0 .. 2^bits - 1
    packed = pack_bits(codes.long(), cfg.bits)
    out = QuantizedTensor(packed, scales.float(), zeros, None, None, None, tuple(w.shape), cfg)
    if cfg.double_quant:
        out = _quantize_scales(out)
    return out


def _quantize_scales(q: QuantizedTensor) -> QuantizedTensor:
    """Double quantization: the fp32 scales minus their mean, as int8 in blocks of 256."""
    scales = q.scales
    mean = scales.mean()
    centred = scales - mean
    n = centred.numel()
    blocks = F.pad(centred, (0, -n % DOUBLE_QUANT_BLOCK)).view(-1, DOUBLE_QUANT_BLOCK)
    block_scale = (blocks.abs().max(dim=1).values / 127).clamp(min=torch.finfo(torch.float32).tiny)
    codes = torch.round(blocks / block_scale[:, None]).clamp(-127, 127).view(-1)[:n]
    return replace(q, scales=None, scale_codes=codes.to(torch.int8),
                   scale_scales=block_scale.float(), scale_mean=mean.float())


def fake_quantize(w: torch.Tensor, config: QuantConfig | None = None, **kwargs) -> torch.Tensor:
    """Quantize and dequantize at once: the weight the quantized model computes with."""
    return quantize(w, config, **kwargs).dequantize().to(w.dtype)


def quantization_error(w: torch.Tensor, config: QuantConfig | None = None, **kwargs) -> dict:
    """How far the quantized weight is from ``w``.

    Returns mse (mean squared error), max_abs (largest |error|), relative
    (||error|| / ||w||) and bits_per_weight (measured, scales included).
    """
    q = quantize(w, config, **kwargs)
    err = q.dequantize() - w.detach().float()
    return {"mse": float(err.pow(2).mean()), "max_abs": float(err.abs().max()),
            "relative": float(err.norm() / w.detach().float().norm().clamp(min=1e-30)),
            "bits_per_weight": q.bits_per_weight}


# --- a quantized layer and a quantized model -----------------------------------------------
class QuantLinear(nn.Module):
    """A linear layer whose weight is stored quantized and dequantized in ``forward``.

    x (..., in_features) -> (..., out_features). The packed codes and scales are
    buffers (they move with ``.to(device)`` and are in the ``state_dict``); the
    weight has no gradient. The bias, if any, stays in float32.
    """

    def __init__(self, qweight: QuantizedTensor, bias: torch.Tensor | None = None):
        super().__init__()
        if len(qweight.shape) != 2:
            raise ValueError(f"a linear weight is 2-D (out, in), got shape {qweight.shape}")
        self.out_features, self.in_features = qweight.shape
        self.config, self._shape = qweight.config, qweight.shape
        for name in QuantizedTensor.TENSORS:
            self.register_buffer(name, getattr(qweight, name))
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(),
                                                           requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, config: QuantConfig | None = None,
                    **kwargs) -> QuantLinear:
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"expected an nn.Linear, got {type(linear).__name__}")
        return cls(quantize(linear.weight, config, **kwargs), linear.bias)

    @property
    def qweight(self) -> QuantizedTensor:
        return QuantizedTensor(*(getattr(self, n) for n in QuantizedTensor.TENSORS),
                               self._shape, self.config)

    def dequantized_weight(self) -> torch.Tensor:
        return self.qweight.dequantize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)

    def to_linear(self) -> nn.Linear:
        """A plain float32 nn.Linear with the dequantized weight (for merging adapters)."""
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                          device=self.codes.device)
        with torch.no_grad():
            layer.weight.copy_(self.dequantized_weight())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"{self.config.label}, {self.qweight.bits_per_weight:.2f} bits/weight")


def linear_names(model: nn.Module) -> list[str]:
    """Names of the model's nn.Linear layers, except a weight tied to an embedding."""
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return [n for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and id(m.weight) not in embedded]


def quantize_model(model: nn.Module, config: QuantConfig | None = None,
                   targets: list[str] | None = None, **kwargs) -> nn.Module:
    """A copy of ``model`` with its linear layers replaced by ``QuantLinear``.

    ``targets``: names of the layers to quantize (default ``linear_names(model)``:
    every linear layer; in the course GPT the output layer shares its weight with
    the token embedding, so it and the embeddings stay in float32, as in QLoRA).
    The original model is not changed.
    """
    cfg = _config(config, kwargs)
    names = linear_names(model) if targets is None else list(targets)
    new = copy.deepcopy(model)
    modules = dict(new.named_modules())
    for name in names:
        layer = modules.get(name)
        if not isinstance(layer, nn.Linear):
            raise ValueError(f"{name!r} is not a linear layer of the model; linear layers: "
                             f"{linear_names(model)}")
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else new, child,
                QuantLinear.from_linear(layer, cfg))
    return new.eval()


def model_nbytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer of ``model`` (a tied tensor counted once)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.nbytes
    return total


def quantized_share(model: nn.Module) -> tuple[int, int]:
    """(weights stored quantized, all weights): how much of the model is compressed."""
    quantized = sum(m.qweight.numel for m in model.modules() if isinstance(m, QuantLinear))
    seen, floats = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            floats += p.numel()
    return quantized, quantized + floats


# --- memory arithmetic and file-format names -------------------------------------------------
def memory_gb(n_params: float, bits_per_weight: float) -> float:
    """Gigabytes (10^9 bytes) to store ``n_params`` weights at ``bits_per_weight`` bits.

    ``memory_gb(70e9, 16)`` = 140 GB, ``memory_gb(70e9, 4)`` = 35 GB. Weights only:
    running a model also needs activations and the key/value cache.
    """
    if n_params < 0 or bits_per_weight <= 0:
        raise ValueError("need n_params >= 0 and bits_per_weight > 0")
    return n_params * bits_per_weight / 8 / 1e9


def scale_overhead_bits(group_size: int, scale_bits: float = 32, double_quant: bool = False
                        ) -> float:
    """Extra bits per weight spent on scales: 32 / 64 = 0.5 for fp32 scales per 64 weights.

    With double quantization each scale costs 8 bits plus a 32-bit scale per
    256 scales: 8 / 64 + 32 / (64 * 256) = 0.127 bits per weight.
    """
    if double_quant:
        return 8 / group_size + 32 / (group_size * DOUBLE_QUANT_BLOCK)
    return scale_bits / group_size


# llama.cpp's GGUF types: average bits per weight of the tensor formats, and what the name
# says. "K" types group 256 weights in a super-block of sub-blocks whose scales are themselves
# quantized (the same idea as double quantization). A file like "Q4_K_M" mixes types: mostly
# Q4_K, with some sensitive tensors (parts of attention's value and the MLP's down projection)
# in Q6_K; "S", "M", "L" are small, medium and large mixes.
GGUF_TYPES: dict[str, tuple[float, str]] = {
    "F16": (16.0, "16-bit floats, no quantization"),
    "Q8_0": (8.5, "8-bit codes, blocks of 32 with one 16-bit scale"),
    "Q6_K": (6.5625, "6-bit K-quant: 256-weight super-blocks, 8-bit sub-block scales"),
    "Q5_K": (5.5, "5-bit K-quant, sub-block scales and minimums in 6 bits"),
    "Q4_K": (4.5, "4-bit K-quant, sub-block scales and minimums in 6 bits"),
    "Q4_0": (4.5, "4-bit codes, blocks of 32 with one 16-bit scale (absmax)"),
    "Q4_1": (5.0, "4-bit codes, blocks of 32 with a 16-bit scale and minimum (zero-point)"),
    "Q3_K": (3.4375, "3-bit K-quant"),
    "Q2_K": (2.625, "2-bit K-quant, 4-bit sub-block scales"),
}


def gguf_name(name: str) -> str:
    """Read a quantization name like "Q4_K_M": bits, method and the size of the mix."""
    parts = name.upper().split("_")
    if not parts[0].startswith("Q") or not parts[0][1:].isdigit():
        raise ValueError(f"{name!r} is not a GGUF quantization name such as Q4_K_M or Q8_0")
    words = [f"{parts[0][1:]}-bit codes"]
    rest = parts[1:]
    if rest and rest[0] == "K":
        words.append("K-quant method (super-blocks of 256 weights, quantized sub-block scales)")
        rest = rest[1:]
    elif rest and rest[0] in ("0", "1"):
        words.append("blocks of 32 with a scale" + (" and a minimum" if rest[0] == "1" else ""))
        rest = rest[1:]
    sizes = {"S": "small", "M": "medium", "L": "large", "XS": "extra small", "XL": "extra large"}
    if rest:
        if rest[0] not in sizes:
            raise ValueError(f"unknown suffix {rest[0]!r} in {name!r}")
        words.append(f"{sizes[rest[0]]} quality mix (some tensors kept in more bits)")
    return ", ".join(words)


# --- outliers: LLM.int8() matrix multiplication ----------------------------------------------
def int8_matmul(x: torch.Tensor, w: torch.Tensor, outlier_threshold: float | None = None
                ) -> torch.Tensor:
    """x @ w.T computed in int8, as LLM.int8() does: (N, K) x (M, K) -> (N, M).

    Each row of x (a token) and each row of w (an output channel) gets its own
    absmax scale; the integer products are summed exactly and rescaled. With
    ``outlier_threshold``, every input feature (column of x) with an |x| above
    it anywhere is taken out and multiplied in float32 instead: the
    mixed-precision decomposition that keeps a few huge features from
    crushing the precision of all the others.
    """
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"need x (N, K) and w (M, K) with the same K, got {tuple(x.shape)} "
                         f"and {tuple(w.shape)}")
    x, w = x.float(), w.float()
    out = torch.zeros(x.shape[0], w.shape[0])
    if outlier_threshold is not None:
        if outlier_threshold <= 0:
            raise ValueError(f"outlier_threshold must be > 0, got {outlier_threshold}")
        outliers = (x.abs() > outlier_threshold).any(dim=0)  # (K,) feature columns
        out = x[:, outliers] @ w[:, outliers].T
        x, w = x[:, ~outliers], w[:, ~outliers]
    if x.shape[1] == 0:
        return out
    sx = (x.abs().max(dim=1, keepdim=True).values / 127).clamp(min=1e-30)  # (N, 1)
    sw = (w.abs().max(dim=1, keepdim=True).values / 127).clamp(min=1e-30)  # (M, 1)
    qx = torch.round(x / sx).to(torch.int8)
    qw = torch.round(w / sw).to(torch.int8)
    exact = qx.double() @ qw.double().T  # integer sums, exact in float64
    return out + exact.float() * sx * sw.T
