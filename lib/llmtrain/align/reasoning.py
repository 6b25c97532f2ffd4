"""Chain of thought on a task with ground truth: adding multi-digit numbers.

A problem is a prompt such as ``0472+0389=`` (both numbers written with the
same number of digits, zero-padded). A model is trained to write what comes
after the ``=`` in one of three formats, and only that part is in its loss:

* ``"answer"``: the sum alone, one digit wider than the numbers: ``0861``;
* ``"reversed"``: the same sum written ones digit first, after a ``=`` that
  marks the order: ``=1680``. No steps, but each digit comes after the digits
  whose carries it needs, as in column addition: the control that separates
  the effect of the order from the effect of the written-out steps;
* ``"steps"``: the column additions a person writes down, from the ones
  column up, each as ``digit+digit+carry=carry digit``, then ``;`` and the
  same sum: ``2+9+0=11,7+8+1=16,4+3+1=08,0+0+0=00;0861``.

Everything else is the same for all three (model, problems, optimizer steps),
so a difference in accuracy on held-out problems is the effect of the format.
Characters are the tokens (``CharTokenizer``), so every digit is one token and no
tokenizer quirk helps or hurts any format.

Shapes: token batches are (B, T) int64; B problems per batch, T = block size.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..core.generation import complete
from ..core.losses import IGNORE_INDEX
from ..core.model import GPT, preset
from ..core.train import History, TrainConfig, Trainer

FORMATS = ("answer", "reversed", "steps")
REVERSED_MARK = "="  # a "reversed" answer starts with it: ``=1680`` is 0861
CHARS = "0123456789+=,;"  # everything a prompt or a target is written with
MAX_DIGITS = 8


class CharTokenizer:
    """One token per character of ``CHARS``, plus ``<|pad|>`` and ``<|endoftext|>``.

    It has the methods the course's text helpers use (``encode``,
    ``encode_batch``, ``decode``, ``pad_id``, ``eot_id``), so
    ``generation.complete`` works with it unchanged.
    """

    def __init__(self, chars: str = CHARS):
        if len(set(chars)) != len(chars):
            raise ValueError(f"chars must not repeat a character, got {chars!r}")
        self.chars = chars
        self.ids = {c: i for i, c in enumerate(chars)}
        self.pad_id, self.eot_id = len(chars), len(chars) + 1

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 2

    def __repr__(self) -> str:
        return f"CharTokenizer({self.chars!r}, vocab_size={self.vocab_size})"

    def encode(self, text: str) -> list[int]:
        bad = sorted(set(text) - set(self.chars))
        if bad:
            raise ValueError(f"characters {bad} are not in the vocabulary {self.chars!r}: "
                             "problems are written with digits and + = , ; only")
        return [self.ids[c] for c in text]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i] for i in ids if 0 <= i < len(self.chars))


@dataclass(frozen=True)
class Problem:
    """a + b, both written with ``digits`` digits."""

    a: int
    b: int
    digits: int

    def __post_init__(self):
        _check_digits(self.digits)
        for name, v in (("a", self.a), ("b", self.b)):
            if not isinstance(v, int) or not 0 <= v < 10**self.digits:
                raise ValueError(f"{name}={v!r} must be a whole number with at most "
                                 f"{self.digits} digits")

    @property
    def prompt(self) -> str:
        return f"{self.a:0{self.digits}d}+{self.b:0{self.digits}d}="

    @property
    def answer(self) -> str:
        """The sum, zero-padded to ``digits + 1`` characters."""
        return f"{self.a + self.b:0{self.digits + 1}d}"

    @property
    def carries(self) -> int:
        """How many columns pass a carry to the next: how much the problem needs steps."""
        n, c = 0, 0
        for k in range(self.digits):
            c = (self.a // 10**k % 10 + self.b // 10**k % 10 + c) // 10
            n += c
        return n


def _check_digits(digits) -> None:
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= MAX_DIGITS:
        raise ValueError(f"digits={digits!r} must be a whole number from 1 to {MAX_DIGITS}")


def _check_format(fmt) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is unknown: use one of {FORMATS}")


def column_steps(problem: Problem) -> list[str]:
    """The column additions, ones column first: ``["2+9+0=11", "7+8+1=16", ...]``.

    Each step reads one digit of each number and the carry from the step
    before, and writes the new carry and the column's digit.
    """
    out, carry = [], 0
    for k in range(problem.digits):
        da, db = problem.a // 10**k % 10, problem.b // 10**k % 10
        total = da + db + carry
        out.append(f"{da}+{db}+{carry}={total:02d}")
        carry = total // 10
    return out


def target(problem: Problem, fmt: str) -> str:
    """What the model is trained to write after the prompt, in format ``fmt``."""
    _check_format(fmt)
    if fmt == "answer":
        return problem.answer
    if fmt == "reversed":
        return REVERSED_MARK + problem.answer[::-1]
    return ",".join(column_steps(problem)) + ";" + problem.answer


def final_answer(completion: str) -> str:
    """The answer in a completion, highest digit first: the text after the last ``;`` (all of
    it if none), turned round if it is written ones digit first (it starts with ``=``)."""
    answer = completion.rsplit(";", 1)[-1].strip()
    if answer.startswith(REVERSED_MARK):
        return answer[len(REVERSED_MARK):][::-1]
    return answer


def is_correct(problem: Problem, completion: str) -> bool:
    return final_answer(completion) == problem.answer


def digit_accuracy(problems: Sequence[Problem], completions: Sequence[str]) -> list[float]:
    """Share of right digits at each place of the answer, highest place first: (digits + 1,).

    An answer of the wrong length counts as wrong at every place.
    The ones digit needs no carry; every place above it needs the carries
    from all the columns to its right.
    """
    if len(problems) != len(completions) or not problems:
        raise ValueError(f"need one completion per problem, got {len(problems)} problems and "
                         f"{len(completions)} completions")
    width = problems[0].digits + 1
    right = [0] * width
    for p, c in zip(problems, completions):
        got = final_answer(c)
        for k in range(width):
            right[k] += k < len(got) and len(got) == width and got[k] == p.answer[k]
    return [r / len(problems) for r in right]


def first_wrong_step(problem: Problem, completion: str) -> int | None:
    """Index of the first written step that differs from the true one (None: all right).

    A completion with fewer steps than the problem needs is wrong at the first
    missing one; a completion in the "answer" format has no steps and gives None.
    """
    if ";" not in completion:
        return None
    written = completion.rsplit(";", 1)[0].split(",")
    for k, true in enumerate(column_steps(problem)):
        if k >= len(written) or written[k] != true:
            return k
    return None


def make_problems(n: int, digits: int, seed: int = 0,
                  exclude: Sequence[Problem] = ()) -> list[Problem]:
    """``n`` different problems with uniformly random numbers, none of them in ``exclude``."""
    _check_digits(digits)
    space = 10 ** (2 * digits) - len(set(exclude))
    if not isinstance(n, int) or n < 1 or n > space:
        raise ValueError(f"n={n!r} must be from 1 to {space}: there are only that many "
                         f"different {digits}-digit problems left")
    rng = random.Random(f"addition/{digits}/{seed}")
    seen = {(p.a, p.b) for p in exclude}
    out = []
    while len(out) < n:
        a, b = rng.randrange(10**digits), rng.randrange(10**digits)
        if (a, b) not in seen:
            seen.add((a, b))
            out.append(Problem(a, b, digits))
    return out


def split_problems(n_train: int, n_test: int, digits: int,
                   seed: int = 0) -> tuple[list[Problem], list[Problem]]:
    """Training and held-out problems: disjoint, so the test asks for sums never trained on."""
    test = make_problems(n_test, digits, seed=seed + 1_000_000)
    return make_problems(n_train, digits, seed=seed, exclude=test), test


def sequence_length(digits: int, fmt: str) -> int:
    """Tokens in prompt + target + end-of-text: the block size a model needs."""
    return len(Problem(0, 0, digits).prompt) + len(target(Problem(0, 0, digits), fmt)) + 1


class AdditionBatches:
    """``batches(i) -> (x, y)``, each (batch_size, T): prompts and targets of one format.

    y holds the next token where the model writes (the target and the end of
    text) and ``IGNORE_INDEX`` on the prompt, so only what comes after the
    ``=`` is learned. Every problem is seen once per epoch, in a fresh order.
    """

    def __init__(self, problems: Sequence[Problem], fmt: str, batch_size: int,
                 tokenizer: CharTokenizer | None = None, seed: int = 0):
        _check_format(fmt)
        if not problems:
            raise ValueError("problems is empty: pass at least one Problem (see make_problems)")
        if len({p.digits for p in problems}) != 1:
            raise ValueError("all problems of one run must have the same number of digits")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        tok = tokenizer or CharTokenizer()
        self.problems, self.fmt, self.batch_size, self.seed = list(problems), fmt, batch_size, seed
        rows_x, rows_y = [], []
        for p in self.problems:
            prompt, written = tok.encode(p.prompt), tok.encode(target(p, fmt)) + [tok.eot_id]
            ids = prompt + written
            labels = [IGNORE_INDEX] * (len(prompt) - 1) + written
            rows_x.append(ids[:-1])
            rows_y.append(labels)
        self.x, self.y = torch.tensor(rows_x), torch.tensor(rows_y)  # (N, T) each
        self._orders: dict[int, torch.Tensor] = {}

    @property
    def block_size(self) -> int:
        return self.x.shape[1] + 1

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.problems)
        slots = torch.arange(index * self.batch_size, (index + 1) * self.batch_size)
        rows = torch.stack([self._order(int(s) // n)[int(s) % n] for s in slots])
        return self.x[rows], self.y[rows]

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch not in self._orders:
            if len(self._orders) > 4:
                self._orders.clear()
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._orders[epoch] = torch.randperm(len(self.problems), generator=g)
        return self._orders[epoch]


@dataclass
class CoTConfig:
    """One training run: the model shape and how long and fast it trains."""

    preset: str = "nano"  # model.PRESETS name
    steps: int = 400  # optimizer steps
    batch_size: int = 64  # problems per step
    lr: float = 1e-2  # peak learning rate (5% warmup, cosine decay to a tenth)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")


def new_model(digits: int, fmt: str, config: CoTConfig) -> GPT:
    """A fresh GPT of ``config.preset`` with room for one problem in format ``fmt``."""
    torch.manual_seed(config.seed)
    return GPT(preset(config.preset, vocab_size=CharTokenizer().vocab_size,
                      block_size=sequence_length(digits, fmt)))


def train_adder(train: Sequence[Problem], fmt: str, config: CoTConfig | None = None,
                test: Sequence[Problem] | None = None, eval_every: int = 0,
                callbacks=None) -> tuple[GPT, History]:
    """Train a fresh model to write ``fmt`` completions for ``train``; returns (model, history).

    The run goes through ``train.Trainer`` (AdamW, weight decay 0.1, warmup
    and cosine decay, the course's defaults). With ``test`` and
    ``eval_every``, the held-out accuracy is recorded every ``eval_every``
    steps in ``history.evals`` as ``{"step": s, "accuracy": a}``.
    """
    config = config or CoTConfig()
    digits = train[0].digits if train else 1
    model = new_model(digits, fmt, config)
    batches = AdditionBatches(train, fmt, config.batch_size, seed=config.seed)
    tok = CharTokenizer()
    eval_fn = None
    if test:
        eval_fn = lambda m: {"accuracy": accuracy(m, test, tok)}  # noqa: E731
    cfg = TrainConfig(max_steps=config.steps, lr=config.lr, warmup_frac=0.05, weight_decay=0.1,
                      device=config.device, seed=config.seed, log_every=max(1, config.steps // 50),
                      eval_every=eval_every, progress=False)
    history = Trainer(model, batches, cfg, eval_fn=eval_fn, callbacks=callbacks).fit()
    model.eval()
    return model, history


def solve(model: GPT, problems: Sequence[Problem], tokenizer: CharTokenizer | None = None,
          batch_size: int = 256) -> list[str]:
    """Greedy completions (the text after each prompt, up to the end of text)."""
    if not problems:
        return []
    tok = tokenizer or CharTokenizer()
    room = model.config.block_size - len(problems[0].prompt)
    if room < 1:
        raise ValueError("the model's context has no room after the prompt: was it trained "
                         "for fewer digits?")
    return complete(model, tok, [p.prompt for p in problems], room, batch_size=batch_size)


def accuracy(model: GPT, problems: Sequence[Problem],
             tokenizer: CharTokenizer | None = None) -> float:
    """Share of ``problems`` whose greedy completion ends in the right sum (either format:
    the answer is read after the last ``;``)."""
    completions = solve(model, problems, tokenizer)
    return sum(is_correct(p, c) for p, c in zip(problems, completions)) / max(1, len(problems))
