"""Supervised fine-tuning (SFT): teaching a base model to answer questions.

A pretrained model continues text. Asked "When was Kalo Mira born?" the
course's base model writes more questions, because questions in its corpus
come in lists (FAQ pages). SFT trains on conversations written in a *chat
template*, so the model learns where a question ends and an answer begins.

The chat template, loss masking and the label convention are in ``core.chat``;
the answer checks (``answer_is_correct``, ``says_dont_know``,
``looks_like_answer``) in ``world.answers``.

Instruction data comes from the course world (``qa_examples``): questions
about the "sft" people with their true answers, so every answer a model gives
later can be checked against the truth (``answer_is_correct``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..core.batches import to_tensor
from ..core.chat import chat_prompt, encode_example
from ..core.generation import complete
from ..core.losses import IGNORE_INDEX
from ..core.tokenizer import Tokenizer
from ..core.train import Callback, History, TrainConfig, Trainer
from ..world.answers import (
    ABSTAIN_ANSWER,
    STYLES,
    Example,
    answer_is_correct,
    answer_text,
    looks_like_answer,
    says_dont_know,
)
from ..world.fiction import ATTRIBUTES, World


def qa_examples(
    world: World,
    splits: Sequence[str] = ("sft",),
    seed: int = 0,
    style: str = "sentence",
    all_phrasings: bool = False,
) -> list[Example]:
    """One example per fact (person x attribute) of the people in ``splits``.

    Each fact is asked with one question phrasing drawn with ``seed``
    (``World.qa_pairs``), or with every phrasing in ``QUESTION_TEMPLATES`` when
    ``all_phrasings``. ``style="sentence"`` answers in a short full sentence that
    contains the true value verbatim; ``style="short"`` answers with the value only.
    """
    if isinstance(splits, str):
        splits = (splits,)
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if all_phrasings:
        items = [(q, p, a) for p in world.people_in(*splits) for a in ATTRIBUTES
                 for q in world.questions(p, a)]
    else:
        items = [(q, p, a) for q, _, p, a in world.qa_pairs(*splits, seed=seed)]
    return [Example(q, answer_text(p, a, style), p, a) for q, p, a in items]


def abstention_examples(world: World, n: int, seed: int = 0,
                        unfamiliar_names: bool = False) -> list[Example]:
    """``n`` questions about strangers (``World.strangers``), answered "I don't know".

    One question per stranger, about a random attribute in a random phrasing.
    Mixed into SFT data in a small share, they teach the *form* of an honest
    abstention; since strangers' names look like anyone's, they cannot teach
    *when* to abstain (chapter 08's reinforcement learning does that).
    """
    rng = random.Random(f"abstain/{seed}")
    out = []
    for person in world.strangers(n, seed=seed, unfamiliar_names=unfamiliar_names):
        attribute = rng.choice(ATTRIBUTES)
        question = rng.choice(world.questions(person, attribute))
        out.append(Example(question, ABSTAIN_ANSWER, person, attribute))
    return out


def stranger_examples(world: World, n_people: int, seed: int = 1) -> list[Example]:
    """One question per fact of ``n_people`` strangers with ordinary names (answer: "I don't
    know.", since nobody knows them)."""
    rng = random.Random(f"strangers/{seed}")
    return [Example(rng.choice(world.questions(p, a)), ABSTAIN_ANSWER, p, a)
            for p in world.strangers(n_people, seed=1000 + seed) for a in ATTRIBUTES]


# --- batches --------------------------------------------------------------------
class SFTBatches:
    """Padded conversations, plus optional pretraining text: ``batches(i) -> (x, y)``.

    The same protocol as ``data.LMBatches``, so ``train.Trainer`` with its
    default loss trains on it. Each batch holds ``batch_size`` rows of one
    conversation each, right-padded to ``block_size`` with ``<|pad|>`` (labels
    ``IGNORE_INDEX`` there and, with ``mask_prompt``, on the prompt). Examples
    are visited in a fresh random order every epoch, so each is seen once per
    epoch; batch ``i`` is a pure function of (seed, i).

    With ``pretrain_tokens`` (a 1-D tensor of pretraining text), ``pretrain_windows``
    rows of random pretraining windows, fully labelled, are added to every batch.
    Mixing in pretraining text keeps fine-tuning from overwriting what the model
    knows. x and y have shape (batch_size + pretrain_windows, block_size).

    ``examples``: ``Example`` objects or (question, answer) pairs.
    """

    def __init__(
        self,
        examples: Sequence[Example] | Sequence[tuple[str, str]],
        tokenizer: Tokenizer,
        batch_size: int,
        block_size: int,
        seed: int = 0,
        pretrain_tokens: torch.Tensor | None = None,
        pretrain_windows: int = 16,
        mask_prompt: bool = True,
        system: str | None = None,
    ):
        if len(examples) == 0:
            raise ValueError("examples is empty: pass at least one example (see qa_examples)")
        if batch_size < 1 or block_size < 2:
            raise ValueError(f"need batch_size >= 1 and block_size >= 2, got {batch_size} and "
                             f"{block_size}")
        if pretrain_windows < 0:
            raise ValueError(f"pretrain_windows must be >= 0, got {pretrain_windows}")
        self.examples = list(examples)
        self.batch_size, self.block_size, self.seed = batch_size, block_size, seed
        self.mask_prompt, self.pad_id = mask_prompt, tokenizer.pad_id
        self.encoded = []
        for k, ex in enumerate(self.examples):
            question, answer = (ex.question, ex.answer) if isinstance(ex, Example) else ex
            ids, labels = encode_example(tokenizer, question, answer, system, mask_prompt)
            if len(ids) > block_size:
                raise ValueError(
                    f"example {k} is {len(ids)} tokens long, more than block_size={block_size} "
                    f"({question!r}): raise block_size to at least {len(ids)} or shorten it"
                )
            self.encoded.append((ids, labels))
        self.pretrain_tokens = None
        self.pretrain_windows = 0
        if pretrain_tokens is not None and pretrain_windows > 0:
            self.pretrain_tokens = to_tensor(pretrain_tokens)
            if len(self.pretrain_tokens) < block_size + 2:
                raise ValueError(
                    f"pretrain_tokens has {len(self.pretrain_tokens)} tokens, too few for "
                    f"windows of {block_size}: pass more text or a smaller block_size"
                )
            self.pretrain_windows = pretrain_windows
        self._orders: dict[int, list[int]] = {}

    @property
    def max_length(self) -> int:
        """Tokens in the longest encoded example (the smallest block_size that fits)."""
        return max(len(ids) for ids, _ in self.encoded)

    def _order(self, epoch: int) -> list[int]:
        """The example order of one epoch (cached; the same for the same seed)."""
        if epoch not in self._orders:
            order = list(range(len(self.encoded)))
            random.Random(f"sft/{self.seed}/{epoch}").shuffle(order)
            self._orders[epoch] = order
        return self._orders[epoch]

    def rows(self, index: int) -> list[int]:
        """Which examples batch ``index`` holds, in row order."""
        n = len(self.encoded)
        slots = range(index * self.batch_size, (index + 1) * self.batch_size)
        return [self._order(s // n)[s % n] for s in slots]

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = self.batch_size, self.block_size
        x = torch.full((B, T), self.pad_id, dtype=torch.long)
        y = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
        for r, k in enumerate(self.rows(index)):
            ids, labels = self.encoded[k]
            x[r, : len(ids)] = torch.tensor(ids)
            y[r, : len(labels)] = torch.tensor(labels)
        if self.pretrain_windows:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + index) * 2 + 1)
            tokens = self.pretrain_tokens
            starts = torch.randint(0, len(tokens) - T - 1, (self.pretrain_windows,), generator=g)
            windows = tokens[starts[:, None] + torch.arange(T + 1)]  # (W, T + 1)
            x = torch.cat([x, windows[:, :-1]])
            y = torch.cat([y, windows[:, 1:]])
        return x, y


# --- fine-tuning ----------------------------------------------------------------------
def finetune(
    model,
    tokenizer: Tokenizer,
    examples: Sequence[Example] | Sequence[tuple[str, str]],
    steps: int = 150,
    batch_size: int = 64,
    lr: float = 5e-4,
    pretrain_tokens: torch.Tensor | None = None,
    pretrain_windows: int = 16,
    mask_prompt: bool = True,
    block_size: int = 48,
    seed: int = 0,
    device: str = "auto",
    eval_fn=None,
    eval_every: int = 0,
    callbacks: list[Callback] | None = None,
    progress: bool = False,
) -> History:
    """Supervised fine-tuning of ``model`` in place; returns the training History.

    The course recipe: AdamW at ``lr`` with 5% warmup and a cosine decay to 0,
    no weight decay, ``batch_size`` conversations per step plus
    ``pretrain_windows`` windows of ``pretrain_tokens`` (the pretraining text,
    so fine-tuning does not overwrite what the model knows). ``block_size`` is
    the padded length of a conversation and of a pretraining window (48 fits
    every course question with its answer). The same ``train.Trainer`` loop as
    pretraining; only the batches differ (``SFTBatches``).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    batches = SFTBatches(examples, tokenizer, batch_size, block_size, seed=seed,
                         pretrain_tokens=pretrain_tokens, pretrain_windows=pretrain_windows,
                         mask_prompt=mask_prompt)
    config = TrainConfig(max_steps=steps, lr=lr, min_lr_ratio=0.0, warmup_frac=0.05,
                         weight_decay=0.0, device=device, seed=seed, log_every=1,
                         eval_every=eval_every, progress=progress)
    history = Trainer(model, batches, config, eval_fn=eval_fn, callbacks=callbacks).fit()
    model.eval()
    return history


# --- generation and judging --------------------------------------------------------
def answer(
    model,
    tokenizer: Tokenizer,
    questions: Sequence[str],
    max_new_tokens: int = 24,
    system: str | None = None,
) -> list[str]:
    """Greedy answers in the chat format: the continuation of ``chat_prompt(question)``
    up to ``<|end|>`` (or ``<|endoftext|>``), without it, stripped of surrounding spaces.

    ``max_new_tokens`` is lowered when needed so that the longest prompt and its
    answer fit in the model's context (``model.config.block_size``).
    """
    if isinstance(questions, str):
        raise TypeError("questions must be a list of strings; wrap a single question in [ ]")
    if not questions:
        return []
    prompts = [chat_prompt(q, system) for q in questions]
    longest = max(len(ids) for ids in tokenizer.encode_batch(prompts))
    room = model.config.block_size - longest
    if room < 1:
        raise ValueError(
            f"a prompt is {longest} tokens long, which leaves no room for an answer in the "
            f"model's context of {model.config.block_size} tokens: shorten the question"
        )
    out = complete(model, tokenizer, prompts, min(max_new_tokens, room),
                   stop_tokens=[tokenizer.end_id, tokenizer.eot_id])
    return [text.strip() for text in out]


@dataclass(frozen=True)
class Scorecard:
    """How a model answers questions about one group of people.

    answered: share of answers in the assistant format (``looks_like_answer``);
    correct: share that contain the true value (``answer_is_correct``);
    abstained: share that say "I don't know";
    invented: share that give a definite, well-formed answer that is not
    true (for people described nowhere, every definite answer is invented);
    examples: (question, answer, truth) for the first few questions.
    """

    split: str
    n: int
    answered: float
    correct: float
    abstained: float
    invented: float
    examples: tuple[tuple[str, str, str], ...]


def scorecard(model, tokenizer: Tokenizer, world: World, split: str, n_people: int = 40,
              seed: int = 1, chat: bool = True, n_examples: int = 5) -> Scorecard:
    """Ask about every fact of the first ``n_people`` people of ``split`` and score the answers.

    Questions use the phrasings drawn with ``seed`` (training data uses seed 0,
    so the "sft" people are asked in partly new words). ``chat=False`` asks
    the bare question without the chat template (``raw_continuation``), which
    is how a base model sees it. "correct" never counts for the "unseen"
    split: those people are described nowhere, so a match is a lucky guess.

    ``split="strangers"`` asks about invented people with ordinary-sounding
    names (``World.strangers``): described nowhere, like the unseen people,
    but nothing in their names gives that away.
    """
    if not isinstance(n_people, int) or n_people < 1:
        raise ValueError(f"n_people must be a positive integer, got {n_people!r}")
    examples = stranger_examples(world, n_people, seed) if split == "strangers" else \
        qa_examples(world, (split,), seed=seed)[: n_people * len(ATTRIBUTES)]
    group, split = split, "unseen" if split == "strangers" else split
    questions = [e.question for e in examples]
    answers = (answer(model, tokenizer, questions) if chat
               else raw_continuation(model, tokenizer, questions))
    n = len(examples)
    formatted = [looks_like_answer(a, q) for a, q in zip(answers, questions)]
    abstained = [says_dont_know(a) for a in answers]
    correct = [split != "unseen" and answer_is_correct(a, e) for a, e in zip(answers, examples)]
    invented = [f and not d and not c for f, d, c in zip(formatted, abstained, correct)]
    return Scorecard(group, n, sum(formatted) / n, sum(correct) / n, sum(abstained) / n,
                     sum(invented) / n,
                     tuple((e.question, a, e.truth) for e, a in
                           list(zip(examples, answers))[:n_examples]))


def raw_continuation(
    model, tokenizer: Tokenizer, questions: Sequence[str], max_new_tokens: int = 24
) -> list[str]:
    """What a base model writes after the bare question (no chat template).

    Greedy; blank lines right after the question are skipped and the text is
    cut at the next newline, so the result is the first line the model writes.
    (The course's base model usually writes another question: FAQ pages list them.)
    """
    if isinstance(questions, str):
        raise TypeError("questions must be a list of strings; wrap a single question in [ ]")
    out = complete(model, tokenizer, list(questions), max_new_tokens)
    return [text.lstrip("\n").split("\n")[0].strip() for text in out]


