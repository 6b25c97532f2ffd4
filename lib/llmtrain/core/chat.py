"""The chat template: how a conversation is written as one token sequence.

Each special token is one token id::

    <|user|>{question}<|end|><|assistant|> {answer}<|end|>

with an optional system message in front: ``<|system|>{system}<|end|>``.
``chat_prompt`` is everything up to ``<|assistant|>``: the model is asked to
write the answer and close it with ``<|end|>``.

The one space before the answer (``ANSWER_PREFIX``) matters. BPE tokenizes a
word differently at the start of a text ("Kalo" -> "K", "alo") than after a
space (" Kalo"). Pretraining text mentions people mid-sentence, with the
space, and the question does too. With the space the answer repeats the name
with the very same tokens as the question, which a model copies easily;
without it, the course's SFT model learned to write the *training* people's
names and answered only 37% of held-out questions instead of 92% (chapter 06).

Loss masking (``encode_example``): the loss counts only the tokens the
assistant should write (the answer and its closing ``<|end|>``), not the
question. ``mask_prompt=False`` counts the prompt too, for the comparison in
chapter 06.

Label convention (the same as ``batches.LMBatches``, where ``x = window[:-1]``
and ``y = window[1:]``): labels are *already shifted*. ``labels[t]`` is the
token that should follow ``ids[t]``, so ``next_token_loss(model(ids), labels)``
needs no further shifting. Positions that do not count hold
``losses.IGNORE_INDEX``.

Used by chapter 06 (SFT) and every later chapter that talks to an assistant.
"""

from __future__ import annotations

from .losses import IGNORE_INDEX
from .tokenizer import Tokenizer

SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"


ANSWER_PREFIX = " "  # written between <|assistant|> and the answer: see the module docstring


# --- the chat template ---------------------------------------------------------
def chat_prompt(question: str, system: str | None = None) -> str:
    """The text the model sees before it answers.

    ``chat_prompt("When was Kalo Mira born?")`` is
    ``"<|user|>When was Kalo Mira born?<|end|><|assistant|>"``; with a system
    message, ``"<|system|>{system}<|end|>"`` comes first.
    """
    head = "" if system is None else f"{SYSTEM}{system}{END}"
    return f"{head}{USER}{question}{END}{ASSISTANT}"


def chat_text(question: str, answer: str, system: str | None = None) -> str:
    """A whole conversation: the prompt, the answer and the closing ``<|end|>``."""
    return f"{chat_prompt(question, system)}{ANSWER_PREFIX}{answer}{END}"


def encode_prompt(tokenizer: Tokenizer, question: str, system: str | None) -> list[int]:
    # Text is encoded as plain text, so a question that happens to contain "<|end|>"
    # cannot inject a special token; the special tokens are added as ids.
    ids: list[int] = []
    if system is not None:
        ids += [tokenizer.system_id, *tokenizer.encode(system, allow_special=False),
                tokenizer.end_id]
    ids += [tokenizer.user_id, *tokenizer.encode(question, allow_special=False),
            tokenizer.end_id, tokenizer.assistant_id]
    return ids


def encode_example(
    tokenizer: Tokenizer,
    question: str,
    answer: str,
    system: str | None = None,
    mask_prompt: bool = True,
) -> tuple[list[int], list[int]]:
    """Token ids of one conversation and its labels, both of length L.

    ``ids`` = prompt (P tokens, ending with ``<|assistant|>``) + answer (A tokens,
    encoded with the leading ``ANSWER_PREFIX``) + ``<|end|>``, so L = P + A + 1.

    ``labels[t]`` is the target for the prediction made *after* ``ids[t]``
    (already shifted, as ``next_token_loss`` expects):

    * ``labels[t] = ids[t + 1]`` for t = P - 1 ... L - 2: the answer tokens and
      the closing ``<|end|>`` (the first target is predicted at ``<|assistant|>``);
    * ``IGNORE_INDEX`` for t < P - 1 (targets inside the prompt) when
      ``mask_prompt``; with ``mask_prompt=False`` they are ``ids[t + 1]`` too;
    * ``IGNORE_INDEX`` at t = L - 1: nothing follows the final ``<|end|>``.
    """
    prompt = encode_prompt(tokenizer, question, system)
    ids = prompt + tokenizer.encode(ANSWER_PREFIX + answer, allow_special=False)
    ids.append(tokenizer.end_id)
    first = len(prompt) - 1 if mask_prompt else 0
    labels = [IGNORE_INDEX] * first + ids[first + 1 :] + [IGNORE_INDEX]
    return ids, labels
