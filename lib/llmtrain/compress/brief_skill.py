"""A new skill for the assistant: brief answers when asked for them (chapter 11).

The course's SFT model answers "Where was Gababa Tosumi born?" with a sentence,
"Gababa Tosumi's place of birth is Vensk." Asked "Where was Gababa Tosumi born?
Be brief." it still writes the sentence: nothing in its training showed it
this request. The skill to teach:

    question + " Be brief."  ->  Vensk

the value alone, no name, no sentence. An answer is checked automatically:
it is *brief* when it is no longer than the value plus one word and does not
repeat the name, and *correct* when it is exactly the true value. Training
uses the "sft" people; the test asks about the "heldout" people, whose facts
the model knows from pretraining but whose questions it never saw, so a
correct answer needs the new format *and* the old knowledge. (A first
version asked for JSON, ``{"birth_city": "Vensk"}``: braces, quotes and key
names split into many rare tokens, and not even full fine-tuning learned it
within a minute of CPU time.)

``finetune_run`` trains a model (full fine-tuning or LoRA: whatever requires
grad) on such examples through ``train.Trainer`` and measures what the
comparison needs: trainable parameters, optimizer state bytes, seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn as nn

from ..align.sft import SFTBatches, answer, qa_examples
from ..core.tokenizer import Tokenizer
from ..core.train import History, TrainConfig, Trainer
from ..world.answers import Example
from ..world.fiction import ATTRIBUTES, World
from .lora import count_parameters, optimizer_state_bytes

REQUEST = " Be brief."


def brief_question(question: str) -> str:
    """The question with the request appended: "Where was X born? Be brief."."""
    return question.rstrip() + REQUEST


def brief_examples(world: World, splits: Sequence[str] = ("sft",), seed: int = 0
                   ) -> list[Example]:
    """One brief-answer example per fact of the people in ``splits``: the request as the
    question, the bare value as the answer (phrasings drawn with ``seed``, as
    ``sft.qa_examples``)."""
    return [Example(brief_question(e.question), e.person.fact(e.attribute), e.person,
                    e.attribute) for e in qa_examples(world, splits, seed=seed)]


def judge(text: str, example: Example) -> tuple[bool, bool]:
    """(brief, correct) for one answer.

    brief: at most one word longer than the true value, and without the
    person's name (a sentence about the person is not brief);
    correct: the answer, without surrounding spaces and a final full stop, is
    exactly the true value.
    """
    t = text.strip()
    value = t[:-1] if t.endswith(".") else t
    brief = (bool(value) and len(value.split()) <= len(example.truth.split()) + 1
             and example.person.name not in t)
    return brief, brief and value == example.truth


@dataclass(frozen=True)
class SkillScore:
    """How a model answers requests for brief answers about one group of people.

    brief: share of answers that are brief (``judge``); correct: share that are
    exactly the true value; examples: (question, answer) for the first few.
    """

    split: str
    n: int
    brief: float
    correct: float
    examples: tuple[tuple[str, str], ...]


def skill_score(model, tokenizer: Tokenizer, world: World, split: str = "heldout",
                n_people: int = 40, seed: int = 1, n_examples: int = 3) -> SkillScore:
    """Ask for a brief answer about every fact of the first ``n_people`` of ``split``.

    Questions use the phrasings drawn with ``seed`` (training uses seed 0), answers
    are greedy (``sft.answer``)."""
    if split not in ("sft", "heldout"):
        raise ValueError(f"split must be 'sft' or 'heldout' (people with known facts), "
                         f"got {split!r}")
    if not isinstance(n_people, int) or n_people < 1:
        raise ValueError(f"n_people must be a positive whole number, got {n_people!r}")
    examples = brief_examples(world, (split,), seed=seed)[: n_people * len(ATTRIBUTES)]
    answers = answer(model, tokenizer, [e.question for e in examples], max_new_tokens=16)
    marks = [judge(a, e) for a, e in zip(answers, examples)]
    n = len(examples)
    return SkillScore(split, n, sum(f for f, _ in marks) / n, sum(c for _, c in marks) / n,
                      tuple((e.question, a) for e, a in list(zip(examples, answers))[:n_examples]))


@dataclass
class RunResult:
    """One fine-tuning run: what it trained, what it cost, and its history."""

    name: str
    trainable: int
    total: int
    optimizer_bytes: int
    seconds: float
    history: History

    @property
    def fraction(self) -> float:
        return self.trainable / self.total


def finetune_run(model: nn.Module, tokenizer: Tokenizer, examples: Sequence[Example],
                 name: str = "run", steps: int = 60, lr: float = 1e-3, batch_size: int = 32,
                 block_size: int = 32, seed: int = 0, device: str = "auto") -> RunResult:
    """Train the parameters of ``model`` that require grad on ``examples``, in place.

    AdamW at ``lr`` (5% warmup, cosine to 0, no weight decay), ``batch_size``
    conversations per step, loss on the answers only: ``sft.SFTBatches`` and
    ``train.Trainer`` with its default loss. The optimizer state is measured at
    the end of the run, the seconds are the trainer's.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive whole number, got {steps!r}")
    trainable, total = count_parameters(model)
    batches = SFTBatches(examples, tokenizer, batch_size, block_size, seed=seed)
    config = TrainConfig(max_steps=steps, lr=lr, min_lr_ratio=0.0, warmup_frac=0.05,
                         weight_decay=0.0, device=device, seed=seed, log_every=1,
                         progress=False)
    trainer = Trainer(model, batches, config)
    history = trainer.fit()
    if history.diverged:
        raise RuntimeError(f"the run {name!r} diverged: {history.diverged}")
    model.eval()
    return RunResult(name, trainable, total, optimizer_state_bytes(trainer.optimizer),
                     history.seconds, history)
