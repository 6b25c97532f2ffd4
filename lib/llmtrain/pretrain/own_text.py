"""Train a tiny GPT on a text you chose, and measure what it learned.

``read_text(path)`` reads your file through ``world.corpora.load_text_file``
(which explains a missing, empty, binary or wrongly encoded file) and adds the
two limits that matter for training: a text shorter than ``MIN_CHARS`` is
refused with how much is needed, and a text longer than ``MAX_CHARS`` is cut
(on a line break) with a note that says so.

``train_on_text(text, ...)`` is the whole pipeline in one call:

1. the first 90% of the characters is training text, the last 10% held out;
2. a byte-level BPE tokenizer is trained on the training text only;
3. a small GPT is trained on its tokens with the course's ``Trainer``;
4. the held-out text is scored three ways, all in bits per UTF-8 byte: the
   GPT, a unigram model fitted on the same training tokens (context ignored),
   and gzip (which has not seen the training text);
5. ``OwnTextRun.samples(...)`` writes new text in the style it learned.

Nothing is written to disk: the tokenizer, model and numbers live in the
returned ``OwnTextRun``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..core.batches import LMBatches
from ..core.model import GPT
from ..core.model import preset as model_preset
from ..core.tokenizer import Tokenizer, train_bpe
from ..core.train import Callback, History, TrainConfig, Trainer
from ..world.corpora import load_text_file
from . import compression
from .ngram import UnigramLM, best_k

MIN_CHARS = 20_000  # about 10 pages: below this the held-out 10% is too small to measure
MAX_CHARS = 5_000_000  # longer texts are cut here: more would take minutes on a CPU
HELDOUT_SHARE = 0.1


def read_text(
    path: str | os.PathLike[str],
    *,
    min_chars: int = MIN_CHARS,
    max_chars: int = MAX_CHARS,
    encoding: str = "utf-8",
) -> tuple[str, str]:
    """Your text file, checked for training: returns ``(text, note)``.

    ``note`` is "" or says what was changed (a text over ``max_chars`` keeps
    its first ``max_chars`` characters, cut at the last line break before).
    Raises ``FileNotFoundError``, ``IsADirectoryError`` or ``ValueError`` with
    a message that says what to change.
    """
    try:
        text = load_text_file(path, encoding=encoding, max_bytes=None)
    except ValueError as e:
        if "is not valid" in str(e):
            raise ValueError(
                f"{e} Or convert it to UTF-8 first, e.g. "
                "`iconv -f latin1 -t utf-8 old.txt > new.txt`."
            ) from e
        raise
    if len(text) < min_chars:
        raise ValueError(
            f"'{path}' has {len(text):,} characters; training needs at least {min_chars:,} "
            f"(about {min_chars // 2_000} pages of plain text), so that the held-out "
            f"{HELDOUT_SHARE:.0%} is long enough to measure. Use a longer text, or join "
            "several files into one."
        )
    note = ""
    if len(text) > max_chars:
        cut = text.rfind("\n", 0, max_chars) + 1  # keep the line break itself
        cut = cut if cut > max_chars // 2 else max_chars
        note = (
            f"'{path}' has {len(text):,} characters; kept the first {cut:,} "
            f"(the limit is {max_chars:,}, so that training stays within minutes on a CPU)."
        )
        text = text[:cut]
    return text, note


@dataclass
class OwnTextRun:
    """What ``train_on_text`` made and measured (held-out numbers on the last 10%)."""

    tokenizer: Tokenizer
    model: GPT
    history: History
    train_chars: int
    heldout_bytes: int  # UTF-8 bytes of the held-out text
    heldout_tokens: int
    heldout_loss: float  # the GPT, nats per held-out token
    bits_per_byte: dict[str, float] = field(default_factory=dict)  # "GPT", "unigram", "gzip"
    seconds: float = 0.0  # tokenizer + training + evaluation

    def samples(self, n: int = 2, max_new_tokens: int = 60, temperature: float = 0.8,
                seed: int = 0, prompt: str = "") -> list[str]:
        """``n`` texts the model writes after ``prompt`` (default: from the start of a text)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        eot = self.tokenizer.special_id("endoftext")
        start = [eot] + self.tokenizer.encode(prompt, allow_special=False)
        dev = next(self.model.parameters()).device
        idx = torch.tensor([start] * n, device=dev)
        gen = torch.Generator(device=dev).manual_seed(seed)
        out = self.model.generate(idx, max_new_tokens, temperature=temperature,
                                  stop_tokens=[eot], pad_id=eot, generator=gen)
        texts = []
        for row in out[:, len(start):].tolist():
            row = row[: row.index(eot)] if eot in row else row
            texts.append(prompt + self.tokenizer.decode(row))
        return texts

    def summary(self) -> str:
        """The held-out numbers, one line each."""
        b = self.bits_per_byte
        return "\n".join([
            f"trained on {self.train_chars:,} characters for {self.history.steps[-1]} steps "
            f"({self.seconds:.1f} s in all); held out {self.heldout_bytes:,} bytes = "
            f"{self.heldout_tokens:,} tokens",
            f"GPT      {b['GPT']:.2f} bits per byte ({self.heldout_loss:.2f} nats/token)",
            f"unigram  {b['unigram']:.2f} bits per byte (token frequencies, no context)",
            f"gzip     {b['gzip']:.2f} bits per byte (8 would be no compression)",
        ])


def split_text(text: str, heldout_share: float = HELDOUT_SHARE) -> tuple[str, str]:
    """The first ``1 - heldout_share`` of the characters, and the rest."""
    cut = int(len(text) * (1 - heldout_share))
    return text[:cut], text[cut:]


def train_on_text(
    text: str,
    vocab_size: int = 512,
    preset: str = "nano",
    steps: int = 150,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callbacks: Sequence[Callback] = (),
    *,
    block_size: int = 64,
    batch_size: int = 16,
    lr: float = 3e-3,
    progress: bool = False,
) -> OwnTextRun:
    """Tokenizer, GPT and held-out scores for ``text``; see the module docstring."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    start = time.perf_counter()
    train_text, held_text = split_text(text)
    tok = train_bpe(train_text, vocab_size, special_tokens=("<|endoftext|>",))  # no chat tokens
    train_ids = tok.encode(train_text, allow_special=False)  # "<|endoftext|>" in a file is text
    held_ids = tok.encode(held_text, allow_special=False)
    eot = tok.special_id("endoftext")
    if len(train_ids) < block_size + 2 or len(held_ids) < 2:
        raise ValueError(
            f"the text gives only {len(train_ids):,} training and {len(held_ids):,} held-out "
            f"tokens; use a longer text (at least {MIN_CHARS:,} characters)"
        )

    torch.manual_seed(seed)
    model = GPT(model_preset(preset, vocab_size=tok.vocab_size, block_size=block_size))
    config = TrainConfig(max_steps=steps, lr=lr, warmup_frac=0.1, device=str(device), seed=seed,
                         progress=progress, log_every=1)
    trainer = Trainer(model, LMBatches(train_ids, block_size, batch_size, seed=seed), config,
                      callbacks=list(callbacks))
    history = trainer.fit()

    # Every held-out token is scored: the stream starts with <|endoftext|> as pure context.
    held_stream = [eot] + held_ids
    n_bytes = len(held_text.encode("utf-8"))
    gpt_nats = compression.stream_surprisals(trainer.model, held_stream, block_size)
    split = len(train_ids) * 9 // 10  # the unigram's smoothing is chosen on training text
    k, _ = best_k(UnigramLM, train_ids[:split], train_ids[split:], tok.vocab_size)
    unigram = UnigramLM(tok.vocab_size, k).fit(train_ids)
    bpb = {
        "GPT": compression.model_bits_per_byte(gpt_nats, n_bytes),
        "unigram": compression.model_bits_per_byte(unigram.token_losses(held_stream), n_bytes),
        "gzip": compression.compressor_bits_per_byte(held_text, "gzip"),
    }
    loss = float(gpt_nats.mean())
    if not math.isfinite(loss):
        raise RuntimeError("the held-out loss is not finite: try fewer steps or a lower lr")
    return OwnTextRun(tok, trainer.model, history, len(train_text), n_bytes, len(held_ids), loss,
                      bpb, time.perf_counter() - start)
