"""Compressors and model code lengths, in bits per byte."""

from __future__ import annotations

import math
import os

import pytest
import torch

from llmtrain.core.batches import evaluate_loss
from llmtrain.core.model import GPT, preset, token_logprobs
from llmtrain.pretrain import compression as C

TEXT = "Romi Leno majored in Architecture. Romi Leno works for Ethost Works.\n" * 40


def test_random_bytes_do_not_compress_and_repetition_does():
    noise = os.urandom(20_000)
    for method in C.COMPRESSORS:
        assert C.compressor_bits_per_byte(noise, method) > 7.95
        assert C.compressor_bits_per_byte(TEXT, method) < 1.0
    assert C.compressed_size("abc", "gzip") == len(C.COMPRESSORS["gzip"](b"abc"))
    with pytest.raises(ValueError, match="unknown compressor"):
        C.compressed_size("abc", "zip")
    with pytest.raises(ValueError, match="empty"):
        C.compressor_bits_per_byte("", "gzip")


def test_gzip_output_is_deterministic():
    assert C.COMPRESSORS["gzip"](b"hello" * 9) == C.COMPRESSORS["gzip"](b"hello" * 9)


def test_primed_zlib_round_trips_and_helps_on_similar_text():
    new = "Romi Leno works for Ethost Works. Romi Leno majored in Architecture.\n"
    blob = C.primed_compress(new, TEXT)
    assert C.primed_decompress(blob, TEXT) == new.encode()
    cold = 8 * len(C.primed_compress(new, b"")) / len(new)
    assert C.primed_bits_per_byte(new, TEXT) < 0.5 * cold


def test_only_the_last_32kb_of_the_dictionary_is_used():
    data = b"some text to compress, some text to compress"
    long_dict = os.urandom(100_000)
    assert C.primed_compress(data, long_dict) == C.primed_compress(data, long_dict[-C.ZDICT_MAX:])


def test_conditional_code_length_is_small_for_text_seen_before():
    assert C.conditional_bits_per_byte(TEXT[:500], TEXT, "lzma") < 0.5
    assert C.conditional_bits_per_byte(TEXT[:500], TEXT, "lzma") < C.compressor_bits_per_byte(
        TEXT[:500], "lzma")


def test_documents_text_adds_one_newline_per_document():
    assert C.documents_text(["a b", "c"]) == "a b\nc\n"


def _tiny_gpt(block_size=32):
    torch.manual_seed(0)
    return GPT(preset("nano", vocab_size=50, block_size=block_size)).eval()


def test_stream_surprisals_cover_every_token_and_match_token_logprobs():
    model = _tiny_gpt()
    tokens = torch.randint(0, 50, (1 + 3 * 16 + 5,))  # 3 full windows and a short one
    s = C.stream_surprisals(model, tokens, block_size=16, batch_size=2)
    assert s.shape == (len(tokens) - 1,)
    first = -token_logprobs(model, tokens[None, :17])[0]
    last = -token_logprobs(model, tokens[None, 48:])[0]
    assert torch.allclose(s[:16].float(), first, atol=1e-5)
    assert torch.allclose(s[48:].float(), last, atol=1e-5)


def test_stream_surprisals_agree_with_evaluate_loss_on_full_windows():
    model = _tiny_gpt()
    tokens = torch.randint(0, 50, (1 + 4 * 16,))
    s = C.stream_surprisals(model, tokens, block_size=16)
    loss = evaluate_loss(model, tokens, block_size=16, max_windows=None)
    assert float(s.mean()) == pytest.approx(loss, rel=1e-5)


def test_code_length_of_a_uniform_model():
    n_tokens, n_bytes, V = 1_000, 4_000, 2048
    nats = torch.full((n_tokens,), math.log(V))
    assert C.code_length_bits(nats) == pytest.approx(n_tokens * 11)  # log2 2048 = 11 bits
    assert C.model_bits_per_byte(nats, n_bytes) == pytest.approx(11 / 4)
    assert C.code_length_bits([math.log(2)] * 8) == pytest.approx(8)
