"""Text in, text out: prompting a model through its tokenizer.

``GPT.generate`` works on token ids. These helpers add what a notebook needs:
encoding a batch of prompts of different lengths (left-padded, so that every
continuation starts at the same column), decoding only the new tokens, and
stopping at a string such as a newline.
"""

from __future__ import annotations

import torch

from .model import GPT
from .tokenizer import Tokenizer


def encode_prompts(tokenizer: Tokenizer, prompts: list[str], block_size: int | None = None,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded token ids (B, T) and attention mask (B, T) for a list of prompts."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings; wrap a single prompt in [ ]")
    ids = tokenizer.encode_batch(list(prompts))
    if block_size is not None:
        ids = [x[-block_size:] for x in ids]  # keep the end of a too-long prompt
    width = max(1, max(len(x) for x in ids))
    pad = tokenizer.pad_id
    idx = torch.tensor([[pad] * (width - len(x)) + x for x in ids], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], dtype=torch.long)
    return idx.to(device), mask.to(device)


@torch.no_grad()
def complete(
    model: GPT,
    tokenizer: Tokenizer,
    prompts: list[str],
    max_new_tokens: int = 20,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop: str | None = None,
    stop_tokens: list[int] | None = None,
    seed: int | None = 0,
    batch_size: int = 64,
) -> list[str]:
    """The model's continuation of each prompt (only the new text).

    temperature 0 is greedy decoding. ``stop`` cuts each continuation at the
    first occurrence of that string (e.g. "\\n"). Special tokens end a
    continuation when they are listed in ``stop_tokens`` (default: end of text).
    """
    device = next(model.parameters()).device
    stop_tokens = [tokenizer.eot_id] if stop_tokens is None else list(stop_tokens)
    generator = None if seed is None else torch.Generator(device="cpu").manual_seed(seed)
    room = model.config.block_size - max_new_tokens
    out = []
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        idx, mask = encode_prompts(tokenizer, chunk, block_size=max(1, room), device=device)
        tokens = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k,
                                top_p=top_p, stop_tokens=stop_tokens, attention_mask=mask,
                                pad_id=tokenizer.pad_id, generator=generator)
        for row in tokens[:, idx.shape[1]:].tolist():
            row = [t for t in row if t != tokenizer.pad_id]
            if row and row[-1] in stop_tokens:
                row = row[:-1]
            text = tokenizer.decode(row)
            if stop:
                text = text.split(stop)[0]
            out.append(text)
    return out
