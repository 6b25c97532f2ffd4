"""Quantization: exact codes on hand-computed examples, real packing, layers and models."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from llmtrain.compress import quant
from llmtrain.compress.quant import QuantConfig, QuantLinear
from llmtrain.core.model import GPT, preset


# --- the NF4 code ------------------------------------------------------------------------
def test_nf4_code_is_the_published_one_and_rebuilds_from_normal_quantiles():
    code = quant.NF4_CODE
    assert code.shape == (16,) and code.dtype == torch.float32
    assert code[0] == -1 and code[-1] == 1 and code[7] == 0
    assert torch.all(code[1:] > code[:-1])
    assert (code > 0).sum() == 8 and (code < 0).sum() == 7
    assert torch.allclose(quant.normal_float_code(), code, atol=1e-6)
    assert abs(code[8].item() - 0.07958029955625534) < 1e-7


# --- absmax and zero-point on hand-computed values ------------------------------------------
def test_absmax_int8_per_tensor_by_hand():
    w = torch.tensor([[0.5, -1.27, 0.01, 1.0]])
    q = quant.quantize(w, bits=8, granularity="tensor")
    assert torch.allclose(q.scales, torch.tensor([0.01]))  # 1.27 / 127
    codes = quant.unpack_bits(q.codes, 8, 4) - 128
    assert codes.tolist() == [50, -127, 1, 100]
    assert torch.allclose(q.dequantize(), w, atol=1e-6)


def test_absmax_int4_rounds_to_the_nearest_level():
    w = torch.tensor([[0.7, -0.35, 0.1, 0.0]])  # scale 0.1, 7 levels per side
    q = quant.quantize(w, bits=4, granularity="tensor")
    assert torch.allclose(q.dequantize(), torch.tensor([[0.7, -0.4, 0.1, 0.0]]), atol=1e-6)


def test_zeropoint_maps_the_range_onto_all_codes():
    w = torch.tensor([[0.0, 1.0, 2.0, 3.0]])  # one-sided: 2 bits give 4 codes, one per value
    q = quant.quantize(w, scheme="zeropoint", bits=2, granularity="tensor")
    assert q.zeros.tolist() == [0] and torch.allclose(q.scales, torch.tensor([1.0]))
    assert torch.equal(q.dequantize(), w)
    absmax = quant.quantize(w, scheme="absmax", bits=2, granularity="tensor").dequantize()
    assert not torch.equal(absmax, w)  # absmax has only -1, 0, +1 times the scale


def test_zeropoint_beats_absmax_on_one_sided_data():
    w = torch.relu(torch.randn(64, 64))
    zp = quant.quantization_error(w, scheme="zeropoint", bits=8, granularity="tensor")["mse"]
    ab = quant.quantization_error(w, scheme="absmax", bits=8, granularity="tensor")["mse"]
    assert zp < ab / 2


def test_nf4_picks_the_nearest_code_value():
    code = quant.NF4_CODE
    w = torch.cat([code, code[:8] * 0.99 + code[8:] * 0.01])[None]  # includes +-1: absmax 1
    q = quant.quantize(w, scheme="nf4", bits=4, granularity="tensor")
    expected = code[(w[0][:, None] - code[None]).abs().argmin(dim=1)]
    assert torch.equal(q.dequantize()[0], expected)


# --- packing ------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
def test_pack_unpack_round_trip_and_real_size(bits):
    codes = torch.randint(0, 2 ** bits, (1001,))
    packed = quant.pack_bits(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-1001 * bits // 8)
    assert torch.equal(quant.unpack_bits(packed, bits, 1001), codes)


def test_four_bit_codes_share_a_byte_low_nibble_first():
    packed = quant.pack_bits(torch.tensor([1, 2, 15, 0]), 4)
    assert packed.tolist() == [1 + 2 * 16, 15]


def test_pack_rejects_codes_that_do_not_fit():
    with pytest.raises(ValueError, match="fit in 4 bits"):
        quant.pack_bits(torch.tensor([16]), 4)


def test_measured_bytes_of_a_4bit_weight():
    w = torch.randn(128, 512)
    q = quant.quantize(w, scheme="nf4", bits=4, granularity="group", group_size=64)
    assert q.codes.nbytes == w.numel() // 2  # two codes per byte
    assert q.scales.nbytes == 4 * w.numel() // 64
    assert q.bits_per_weight == pytest.approx(4.5)
    dq = quant.quantize(w, scheme="nf4", bits=4, granularity="group", group_size=64,
                        double_quant=True)
    assert dq.bits_per_weight == pytest.approx(4 + 8 / 64 + 32 / (64 * 256) + 32 / w.numel())
    assert quant.scale_overhead_bits(64, double_quant=True) == pytest.approx(0.127, abs=1e-3)


# --- granularity and error -----------------------------------------------------------------
def test_groups_and_nf4_reduce_error_on_normal_weights():
    w = torch.randn(256, 256)
    err = {(s, g): quant.quantization_error(w, scheme=s, bits=4, granularity="group",
                                            group_size=g)["mse"]
           for s in ("absmax", "nf4") for g in (64, 4096)}
    assert err["absmax", 64] < err["absmax", 4096]
    assert err["nf4", 64] < err["absmax", 64] and err["nf4", 4096] < err["absmax", 4096]


def test_one_outlier_ruins_per_tensor_but_not_per_channel():
    w = torch.randn(64, 64) * 0.02
    w[3, 5] = 5.0
    rest = torch.ones_like(w, dtype=torch.bool)
    rest[3] = False  # every row but the outlier's
    errors = {}
    for g in ("tensor", "channel"):
        approx = quant.fake_quantize(w, bits=8, granularity=g)
        errors[g] = (approx - w)[rest].abs().mean().item()
    assert errors["tensor"] > 10 * errors["channel"]


def test_double_quant_changes_the_scales_very_little():
    w = torch.randn(64, 1024)
    a = quant.quantize(w, scheme="nf4", bits=4, granularity="group", group_size=64)
    b = quant.quantize(w, scheme="nf4", bits=4, granularity="group", group_size=64,
                       double_quant=True)
    assert b.scales is None and b.scale_codes.dtype == torch.int8
    assert torch.allclose(b.group_scales(), a.scales, rtol=0.02)
    assert b.nbytes < a.nbytes


def test_groups_that_do_not_divide_the_tensor_are_padded():
    w = torch.randn(3, 7)
    q = quant.quantize(w, bits=8, granularity="group", group_size=8)
    assert q.dequantize().shape == (3, 7)
    assert torch.allclose(q.dequantize(), w, atol=0.02)


def test_bad_configs_say_what_to_change():
    with pytest.raises(ValueError, match="NF4 is a 4-bit code"):
        QuantConfig(scheme="nf4", bits=8)
    with pytest.raises(ValueError, match="bits must be"):
        QuantConfig(bits=1)
    with pytest.raises(ValueError, match="granularity must be"):
        QuantConfig(granularity="row")
    with pytest.raises(ValueError, match="scheme must be"):
        QuantConfig(scheme="fp8")
    with pytest.raises(ValueError, match="group_size"):
        QuantConfig(granularity="group", group_size=3)
    with pytest.raises(ValueError, match="granularity='group'"):
        QuantConfig(double_quant=True)
    with pytest.raises(TypeError, match="floating-point"):
        quant.quantize(torch.arange(4))
    with pytest.raises(ValueError, match="NaN"):
        quant.quantize(torch.tensor([1.0, float("nan")]))


def test_labels():
    assert QuantConfig(bits=8).label == "int8 absmax channel"
    assert QuantConfig("nf4", 4, "group", 64, True).label == "NF4 g64 +DQ"


# --- the layer and the model ------------------------------------------------------------------
def test_quant_linear_matches_a_linear_with_the_dequantized_weight():
    layer = nn.Linear(32, 16, bias=True)
    q = QuantLinear.from_linear(layer, bits=4, granularity="group", group_size=16)
    x = torch.randn(5, 32)
    expected = x @ q.dequantized_weight().T + layer.bias
    assert torch.allclose(q(x), expected, atol=1e-6)
    assert torch.allclose(q(x), layer(x), atol=0.5)
    assert not any(p.requires_grad for p in q.parameters())
    plain = q.to_linear()
    assert torch.allclose(plain(x), q(x), atol=1e-6)
    assert set(q.state_dict()) >= {"codes", "scales", "bias"}


@pytest.fixture(scope="module")
def tiny_gpt():
    torch.manual_seed(0)
    return GPT(preset("nano", vocab_size=64, block_size=16)).eval()


def test_quantize_model_replaces_linears_and_keeps_the_original(tiny_gpt):
    qm = quant.quantize_model(tiny_gpt, scheme="nf4", bits=4, granularity="group")
    names = quant.linear_names(tiny_gpt)
    assert "lm_head" not in names and len(names) == 4 * 2  # qkv, proj, fc, proj per block
    assert all(isinstance(dict(qm.named_modules())[n], QuantLinear) for n in names)
    assert isinstance(tiny_gpt.blocks[0].attn.qkv, nn.Linear)  # the original is untouched
    x = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        diff = (qm(x) - tiny_gpt(x)).abs().max().item()
    assert 0 < diff < 0.5
    quantized, total = quant.quantized_share(qm)
    assert quantized == sum(dict(tiny_gpt.named_modules())[n].weight.numel() for n in names)
    assert total == tiny_gpt.num_params()
    assert quant.model_nbytes(qm) < quant.model_nbytes(tiny_gpt)


def test_fewer_bits_change_a_model_more(tiny_gpt):
    x = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        exact = tiny_gpt(x)
        diff = {bits: (quant.quantize_model(tiny_gpt, bits=bits, granularity="channel")(x)
                       - exact).abs().max().item() for bits in (8, 4, 2)}
    assert diff[8] < 0.01 and diff[8] < diff[4] / 5 < diff[2] / 5


def test_quantize_model_rejects_unknown_targets(tiny_gpt):
    with pytest.raises(ValueError, match="not a linear layer"):
        quant.quantize_model(tiny_gpt, targets=["blocks.0.ln_1"])


def test_model_nbytes_counts_tied_weights_once(tiny_gpt):
    expected = sum(p.nbytes for p in tiny_gpt.parameters())  # parameters() dedupes the tie
    assert quant.model_nbytes(tiny_gpt) == expected == 4 * tiny_gpt.num_params()


# --- memory and names --------------------------------------------------------------------
def test_memory_calculator():
    assert quant.memory_gb(70e9, 16) == pytest.approx(140)
    assert quant.memory_gb(70e9, 4) == pytest.approx(35)
    with pytest.raises(ValueError):
        quant.memory_gb(1e9, 0)


def test_gguf_names_are_read():
    text = quant.gguf_name("Q4_K_M")
    assert "4-bit" in text and "K-quant" in text and "medium" in text
    assert "minimum" in quant.gguf_name("Q4_1")
    with pytest.raises(ValueError, match="not a GGUF"):
        quant.gguf_name("int4")


# --- LLM.int8() ---------------------------------------------------------------------------------
def test_int8_matmul_is_close_and_outlier_columns_are_rescued():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 256, generator=g)
    w = torch.randn(64, 256, generator=g) * 0.05
    exact = x @ w.T
    rel = lambda y: ((y - exact).norm() / exact.norm()).item()
    assert rel(quant.int8_matmul(x, w)) < 0.02
    x[:, [3, 100]] *= 60  # two outlier features, as in large transformers
    exact = x @ w.T
    plain, rescued = quant.int8_matmul(x, w), quant.int8_matmul(x, w, outlier_threshold=6.0)
    assert rel(plain) > 5 * rel(rescued)
    with pytest.raises(ValueError, match="same K"):
        quant.int8_matmul(x, w[:, :10])
