"""A language model is a compressor: code lengths in bits per byte.

Shannon: a symbol the model gives probability p can be stored in -log2 p bits
(arithmetic coding gets within a couple of bits of this for a whole text). So
a model's **code length** for a text is the sum of -log2 p(token) over its
tokens, and dividing by the text's size in UTF-8 bytes gives **bits per
byte**, a number that does not depend on the tokenizer and that general-purpose
compressors also have: 8 bits per byte is no compression at all.

This module measures both sides on the same bytes:
* ``compressor_bits_per_byte``: gzip, bz2 and lzma at their strongest settings;
* ``primed_bits_per_byte``: zlib (gzip's algorithm, DEFLATE) started with a
  preset dictionary of up to 32 KB of training text (``zdict``), a fairer
  match for a model that has seen training data; ``conditional_bits_per_byte``
  primes any compressor by compressing training text first;
* ``stream_surprisals`` and ``model_bits_per_byte``: a GPT's code length.

A text made of documents is written as each document followed by a newline;
the model sees each document followed by <|endoftext|>, so the end-of-text
token pays for the newline byte (``documents_text``).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
import zlib

import torch

from ..core.batches import to_tensor

ZDICT_MAX = 32 * 1024  # DEFLATE looks back at most 32 KB, so a longer preset dictionary is cut

COMPRESSORS = {  # name -> bytes in, compressed bytes out (strongest standard setting)
    "gzip": lambda b: gzip.compress(b, compresslevel=9, mtime=0),
    "bz2": lambda b: bz2.compress(b, compresslevel=9),
    "lzma": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
}


def _as_bytes(data: str | bytes) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    raise TypeError(f"expected text (str) or bytes, got {type(data).__name__}")


def documents_text(texts) -> str:
    """Documents (strings or ``Document``s) as the compressors see them: each + a newline."""
    return "".join((t.text if hasattr(t, "text") else t) + "\n" for t in texts)


def compressed_size(data: str | bytes, method: str) -> int:
    """Bytes that ``method`` ("gzip", "bz2" or "lzma") needs for ``data``, headers included."""
    if method not in COMPRESSORS:
        raise ValueError(f"unknown compressor {method!r}; choose one of {list(COMPRESSORS)}")
    return len(COMPRESSORS[method](_as_bytes(data)))


def compressor_bits_per_byte(data: str | bytes, method: str) -> float:
    """Compressed size in bits divided by the original size in bytes (8.0 = no gain)."""
    raw = _as_bytes(data)
    if not raw:
        raise ValueError("cannot measure the compression of empty data")
    return 8 * compressed_size(raw, method) / len(raw)


def primed_compress(data: str | bytes, dictionary: str | bytes, level: int = 9) -> bytes:
    """zlib (DEFLATE) output for ``data`` with a preset dictionary (its last 32 KB).

    Decompressing needs the same dictionary: ``primed_decompress``. The 32 KB
    limit is DEFLATE's: it can only point back 32 KB, so earlier text is useless.
    """
    zdict = _as_bytes(dictionary)[-ZDICT_MAX:]
    c = zlib.compressobj(level, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=zdict)
    return c.compress(_as_bytes(data)) + c.flush()


def primed_decompress(blob: bytes, dictionary: str | bytes) -> bytes:
    d = zlib.decompressobj(15, zdict=_as_bytes(dictionary)[-ZDICT_MAX:])
    return d.decompress(blob) + d.flush()


def primed_bits_per_byte(data: str | bytes, dictionary: str | bytes, level: int = 9) -> float:
    """Bits per byte of zlib primed with up to 32 KB of ``dictionary`` (e.g. training text)."""
    raw = _as_bytes(data)
    if not raw:
        raise ValueError("cannot measure the compression of empty data")
    return 8 * len(primed_compress(raw, dictionary, level)) / len(raw)


def conditional_bits_per_byte(data: str | bytes, context: str | bytes, method: str) -> float:
    """Extra bits ``method`` needs for ``data`` once it has compressed ``context``, per byte.

    size(context + data) - size(context): priming by concatenation. It works for
    any compressor and is limited only by how far back the compressor looks
    (gzip 32 KB, bz2 900 KB blocks, lzma up to 64 MB at preset 9).
    """
    raw, ctx = _as_bytes(data), _as_bytes(context)
    if not raw:
        raise ValueError("cannot measure the compression of empty data")
    extra = compressed_size(ctx + raw, method) - compressed_size(ctx, method)
    return 8 * extra / len(raw)


@torch.no_grad()
def stream_surprisals(model, tokens, block_size: int | None = None,
                      batch_size: int = 32) -> torch.Tensor:
    """-ln p(tokens[i] | tokens[:i]) for every i >= 1: (N - 1,) nats, no token left out.

    The stream is cut into consecutive windows of ``block_size`` predictions
    (the same windows as ``llmtrain.core.batches.evaluate_loss``, plus the last, shorter
    one), so the context restarts at each window. Start the stream with
    <|endoftext|> to have its first real token scored too.
    """
    t = to_tensor(tokens)
    if len(t) < 2:
        raise ValueError("need at least 2 tokens: the first is only context")
    block_size = block_size or model.config.block_size
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    starts = list(range(0, len(t) - 1, block_size))
    out = []
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        full = [s for s in chunk if s + block_size + 1 <= len(t)]
        if full:  # full windows in one batch: (B, T + 1)
            w = torch.stack([t[s : s + block_size + 1] for s in full]).to(device)
            out.append(_window_nats(model, w).flatten())
        for s in chunk[len(full):]:  # the shorter last window
            w = t[s:][None].to(device)
            out.append(_window_nats(model, w).flatten())
    model.train(was_training)
    return torch.cat(out).cpu()


def _window_nats(model, w: torch.Tensor) -> torch.Tensor:
    logits = model(w[:, :-1]).float()  # (B, T, V)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, w[:, 1:, None]).squeeze(-1)
    return -logp.double()  # (B, T)


def code_length_bits(surprisals_nats) -> float:
    """Total code length in bits: sum of -log2 p = (sum of -ln p) / ln 2."""
    return float(torch.as_tensor(surprisals_nats, dtype=torch.float64).sum()) / math.log(2)


def model_bits_per_byte(surprisals_nats, n_bytes: int) -> float:
    """A model's code length for a text divided by the text's UTF-8 bytes."""
    if n_bytes < 1:
        raise ValueError("n_bytes must be positive")
    return code_length_bits(surprisals_nats) / n_bytes
