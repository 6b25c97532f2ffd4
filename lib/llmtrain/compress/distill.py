"""Distillation: a small student learns from a big teacher's predictions.

A language model's hard label at each position is one token: the one that
came next in the text. The teacher's prediction at the same position is a
whole distribution over the vocabulary: which other tokens were plausible,
and how plausible. Hinton et al. (2015) call that extra information "dark
knowledge" and train a small student to match it with
``losses.distillation_loss`` (the KL divergence between the two
distributions, both softened by a temperature T, mixed with the usual
cross-entropy by a weight alpha).

This module keeps the comparison fair: every student trains on the same
``TransferSet`` (the same windows of text, the same order, the same number of
steps, through the course's ``train.Trainer``); only the targets change:

* hard labels (alpha = 0): the text's own next tokens;
* soft targets (alpha > 0, temperature T): the teacher's distributions;
* the teacher's own generations (``teacher_generations``): the same window
  starts, continued by the teacher, trained on with hard labels
  (sequence-level distillation, Kim & Rush 2016).

The teacher runs once per window, not once per step: ``transfer_set`` stores
its full output (float16, one row of V logits per position), and the
batches hand it to the loss. Top-k caching would be smaller, but at T = 4 the
course teacher's top 64 tokens hold only about a quarter of its probability,
so a truncated cache would change the very targets the chapter compares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..core.batches import evaluate_loss, to_tensor
from ..core.losses import distillation_loss
from ..core.model import GPT, PRESETS, GPTConfig
from ..core.train import Callback, History, TrainConfig, Trainer

# Students, smallest first (n_layer, n_head, n_embd). The teacher (zoo "base") is "tiny", 4 x 128.
STUDENT_SHAPES: dict[str, dict] = {
    "pico": dict(n_layer=1, n_head=1, n_embd=32),
    "nano": PRESETS["nano"],  # 2 x 64
    "micro": PRESETS["micro"],  # 3 x 96
}


def student_config(name: str, vocab_size: int, block_size: int = 64) -> GPTConfig:
    """The shape of a student: one of ``STUDENT_SHAPES``, with the teacher's vocabulary."""
    if name not in STUDENT_SHAPES:
        raise ValueError(f"unknown student {name!r}: choose one of {list(STUDENT_SHAPES)}")
    return GPTConfig(vocab_size=vocab_size, block_size=block_size, **STUDENT_SHAPES[name])


@dataclass
class TransferSet:
    """The windows a student trains on, and the teacher's predictions there.

    x, y: (N, T) token ids; ``y[:, t]`` is the token after ``x[:, t]`` (the hard
    labels). teacher_logits: (N, T, V) float16, the teacher's next-token logits
    at every position of x, or None (then only hard-label training is possible).
    """

    x: torch.Tensor
    y: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    source: str = "corpus"  # where the text came from: "corpus" or "teacher"

    def __post_init__(self):
        if self.x.ndim != 2 or self.x.shape != self.y.shape:
            raise ValueError(f"x and y must both be (N, T), got {tuple(self.x.shape)} and "
                             f"{tuple(self.y.shape)}")
        if self.teacher_logits is not None and self.teacher_logits.shape[:2] != self.x.shape:
            raise ValueError(f"teacher_logits {tuple(self.teacher_logits.shape)} must be "
                             f"(N, T, V) with (N, T) = {tuple(self.x.shape)}")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def tokens(self) -> int:
        """Positions that carry a target: N x T."""
        return self.x.numel()

    @property
    def cache_megabytes(self) -> float:
        """Memory taken by the teacher's stored logits, in MB (0 without them)."""
        t = self.teacher_logits
        return 0.0 if t is None else t.numel() * t.element_size() / 1e6


def soft_targets(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / T) over the last axis: (..., V) -> (..., V) probabilities."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.softmax(logits.float() / temperature, dim=-1)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """-sum p ln p over the last axis, in nats: (..., V) -> (...)."""
    return -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1)


def top_k_mass(logits: torch.Tensor, k: int, temperature: float = 1.0) -> torch.Tensor:
    """Share of the probability at temperature T held by the k likeliest tokens: (..., V) -> (...).

    What a top-k cache of the teacher keeps; 1 - this is what it throws away.
    """
    if not isinstance(k, int) or not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"k must be a whole number from 1 to {logits.shape[-1]}, got {k!r}")
    return soft_targets(logits, temperature).topk(k, dim=-1).values.sum(-1)


def _check_teacher(teacher: nn.Module) -> None:
    if not isinstance(teacher, GPT):
        raise TypeError(f"teacher must be a GPT (e.g. zoo.load('base')), got "
                        f"{type(teacher).__name__}")


@torch.no_grad()
def teacher_logits(teacher: GPT, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The teacher's next-token logits for windows x (N, T): (N, T, V) float16, on the CPU."""
    _check_teacher(teacher)
    device = next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    rows = [teacher(x[i : i + batch_size].to(device)).half().cpu()
            for i in range(0, len(x), batch_size)]
    teacher.train(was_training)
    return torch.cat(rows)


def transfer_set(teacher: GPT, tokens, n_windows: int, block_size: int = 64, seed: int = 0,
                 with_teacher: bool = True) -> TransferSet:
    """``n_windows`` windows of ``block_size`` tokens at random offsets of a token stream.

    With ``with_teacher`` the teacher is run on each window once and its
    logits are stored: n_windows x block_size x V x 2 bytes (128 windows of 64
    tokens with V = 2048 take 34 MB).
    """
    tokens = to_tensor(tokens)
    if not isinstance(n_windows, int) or n_windows < 1:
        raise ValueError(f"n_windows must be a positive whole number, got {n_windows!r}")
    if block_size > teacher.config.block_size:
        raise ValueError(f"block_size={block_size} is longer than the teacher's context "
                         f"({teacher.config.block_size})")
    if len(tokens) < block_size + 2:
        raise ValueError(f"{len(tokens)} tokens are too few for windows of {block_size}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(tokens) - block_size - 1, (n_windows,), generator=g)
    windows = tokens[starts[:, None] + torch.arange(block_size + 1)]  # (N, T + 1)
    x, y = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
    return TransferSet(x, y, teacher_logits(teacher, x) if with_teacher else None)


@torch.no_grad()
def teacher_generations(teacher: GPT, data: TransferSet, prompt_tokens: int = 8,
                        temperature: float = 1.0, seed: int = 0,
                        batch_size: int = 128) -> TransferSet:
    """The same windows, rewritten by the teacher after their first ``prompt_tokens`` tokens.

    Each window's start is kept as the prompt and the teacher samples the rest
    (at ``temperature``), so the result has the shape of ``data``: (N, T)
    windows whose hard labels are the teacher's own tokens.
    """
    _check_teacher(teacher)
    N, T = data.x.shape
    if not 1 <= prompt_tokens < T:
        raise ValueError(f"prompt_tokens must be from 1 to {T - 1}, got {prompt_tokens}")
    device = next(teacher.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(0, N, batch_size):
        prompt = data.x[i : i + batch_size, :prompt_tokens].to(device)
        out = teacher.generate(prompt, T + 1 - prompt_tokens, temperature=temperature,
                               generator=generator)
        rows.append(out.cpu())
    windows = torch.cat(rows)  # (N, T + 1)
    return TransferSet(windows[:, :-1].contiguous(), windows[:, 1:].contiguous(),
                       source="teacher")


class TransferBatches:
    """``batches(i)`` -> (x, y, teacher_logits) or (x, y): ``batch_size`` windows per step.

    Every window is used once per epoch, in a fresh order each epoch, and
    batch i is a pure function of (seed, i): every student sees the same
    windows in the same order. teacher_logits are returned as float32,
    (B, T, V); they are left out when the set has none or ``soft=False``.
    """

    def __init__(self, data: TransferSet, batch_size: int, seed: int = 0, soft: bool = True):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive whole number, got {batch_size!r}")
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.soft = soft and data.teacher_logits is not None
        self._orders: dict[int, torch.Tensor] = {}

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch not in self._orders:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._orders[epoch] = torch.randperm(len(self.data), generator=g)
        return self._orders[epoch]

    def rows(self, index: int) -> torch.Tensor:
        n = len(self.data)
        slots = range(index * self.batch_size, (index + 1) * self.batch_size)
        return torch.stack([self._order(s // n)[s % n] for s in slots])

    def __call__(self, index: int):
        rows = self.rows(index)
        x, y = self.data.x[rows], self.data.y[rows]
        if not self.soft:
            return x, y
        return x, y, self.data.teacher_logits[rows].float()


def distillation_loss_fn(temperature: float = 1.0, alpha: float = 1.0):
    """A ``Trainer`` loss: ``distillation_loss`` on a (x, y, teacher_logits) batch.

    With alpha = 0 it is the plain next-token loss and also accepts (x, y).
    """
    distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long),
                      temperature, alpha)  # check the settings now, not at the first step

    def loss_fn(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch[0], batch[1]
        logits = model(x)
        if alpha == 0:
            return distillation_loss(logits, logits, y, temperature, 0.0)
        if len(batch) < 3:
            raise ValueError("soft targets need the teacher's logits: use a TransferSet made "
                             "with with_teacher=True (teacher generations carry none)")
        return distillation_loss(logits, batch[2], y, temperature, alpha)

    return loss_fn


@dataclass
class StudentRun:
    """One trained student: its settings, its model and how it learned."""

    label: str
    model: GPT
    history: History
    temperature: float
    alpha: float
    source: str
    eval_steps: list[int] = field(default_factory=list)
    heldout_loss: list[float] = field(default_factory=list)  # nats/token at eval_steps
    settings: dict = field(default_factory=dict)  # train_student's arguments, for matches()

    def matches(self, **settings) -> bool:
        """Whether ``train_student`` with these arguments would repeat this run exactly.

        The transfer set and held-out tokens must be the very same objects; the
        temperature does not matter when alpha = 0.
        """
        mine = dict(self.settings)
        if not mine or set(settings) != set(mine):
            return False
        if settings.get("alpha") == 0:
            settings["temperature"] = mine["temperature"]
        same_object = ("data", "heldout_tokens")
        return (all(settings[k] is mine[k] for k in same_object)
                and all(settings[k] == mine[k] for k in mine if k not in same_object))

    @property
    def n_params(self) -> int:
        return self.model.num_params()

    @property
    def final_loss(self) -> float:
        """Held-out loss after the last step, in nats per token."""
        return self.heldout_loss[-1]

    @property
    def best_loss(self) -> float:
        return min(self.heldout_loss)


def train_student(config: GPTConfig, data: TransferSet, heldout_tokens, steps: int = 150,
                  temperature: float = 1.0, alpha: float = 0.0, label: str = "",
                  batch_size: int = 16, lr: float = 6e-3, eval_every: int = 20,
                  eval_windows: int = 64, seed: int = 0, device: str = "auto",
                  callbacks: list[Callback] | None = None) -> StudentRun:
    """Train a fresh student of shape ``config`` on ``data``; held-out loss every ``eval_every``.

    Every student starts from the same initial weights for the same ``config``
    and ``seed`` and reads the same batches (``TransferBatches``); only the
    targets differ: alpha = 0 trains on the hard labels of ``data``; alpha > 0
    mixes in the teacher's soft targets at ``temperature``. AdamW at ``lr`` with
    5% warmup and cosine decay, through ``train.Trainer``. Held-out loss is the
    plain next-token loss (nats per token) on ``heldout_tokens``, the same
    measure for every student, evaluated at step 0 too.
    """
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig (e.g. model.preset('nano', ...)), got "
                        f"{type(config).__name__}")
    if config.block_size < data.x.shape[1]:
        raise ValueError(f"the student's block_size ({config.block_size}) is shorter than the "
                         f"windows ({data.x.shape[1]} tokens)")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive whole number, got {steps!r}")
    loss_fn = distillation_loss_fn(temperature, alpha)
    if alpha > 0 and data.teacher_logits is None:
        raise ValueError("alpha > 0 needs the teacher's logits, and this TransferSet has none "
                         f"(its text comes from the {data.source}): use alpha=0")
    torch.manual_seed(seed)
    model = GPT(config)
    batches = TransferBatches(data, batch_size, seed=seed, soft=alpha > 0)
    heldout = to_tensor(heldout_tokens)
    measure = lambda m: {"heldout_loss": evaluate_loss(m, heldout, max_windows=eval_windows)}
    cfg = TrainConfig(max_steps=steps, lr=lr, warmup_frac=0.05, min_lr_ratio=0.1,
                      weight_decay=0.1, eval_every=max(1, eval_every), log_every=1,
                      device=device, seed=seed, progress=False)
    settings = dict(config=config, data=data, heldout_tokens=heldout_tokens, steps=steps,
                    temperature=temperature, alpha=alpha, batch_size=batch_size, lr=lr,
                    eval_every=eval_every, eval_windows=eval_windows, seed=seed)
    run = StudentRun(label or _label(temperature, alpha, data.source), model, History(),
                     temperature, alpha, data.source, settings=settings)
    start = measure(model)["heldout_loss"]
    trainer = Trainer(model, batches, cfg, loss_fn=loss_fn, eval_fn=measure,
                      callbacks=callbacks)
    run.history = trainer.fit()
    run.model = trainer.model.eval()
    run.eval_steps = [0] + [e["step"] for e in run.history.evals]
    run.heldout_loss = [start] + [e["heldout_loss"] for e in run.history.evals]
    return run


def _label(temperature: float, alpha: float, source: str) -> str:
    if source == "teacher":
        return "teacher's text"
    if alpha == 0:
        return "hard labels"
    return f"soft T={temperature:g}" + ("" if alpha == 1 else f", alpha={alpha:g}")
