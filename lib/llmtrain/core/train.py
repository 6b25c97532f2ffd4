"""A model-agnostic training loop: the same Trainer trains every model in the course.

The Trainer knows nothing about GPTs. It is given
* a model (any ``nn.Module``),
* ``batches``: a function from a batch index to a batch (see ``data.LMBatches``),
* ``loss_fn(model, batch) -> scalar tensor`` (default: next-token loss on (x, y)),
and it runs AdamW with warmup and cosine decay, gradient accumulation and
clipping, atomic checkpoints with exact resume, and a guard that stops a
diverging run with a message instead of training on NaNs.

How it uses the device is ``device.policy``: on a CUDA GPU bfloat16 autocast
(float16 with a GradScaler where bf16 is missing), TF32 matmuls, fused AdamW,
``torch.compile`` (``TrainConfig.compile=None`` means on for CUDA, off for the
CPU and MPS), pinned memory and non-blocking copies; the CPU path is plain
float32, so CPU runs and checkpoints are exact and repeatable bit for bit.

Under ``torchrun --nproc_per_node N`` it trains data-parallel (NCCL on GPUs,
gloo on the CPU): rank r reads batches r, r + N, r + 2N, ... (its own shard),
DDP averages the gradients, only rank 0 shows progress and writes
checkpoints, and a resumed run restores every rank's random state. With the
same global batch, N workers end with the same weights as one process with
``grad_accum=N`` (within float rounding). End such a script with
``device.cleanup_distributed()``.

Plots and widgets attach through callbacks (``Callback.on_step`` etc.).

Ctrl-C (a notebook's stop button) may stop ``fit`` anywhere, and ``fit()`` again
goes on exactly as if it had never stopped: a step counts only once its update
is done, a stopped step leaves no gradient, token count or random draw behind,
and Ctrl-C waits the few milliseconds while the weights change (see
``Trainer._train_step``). Checkpoints hold only tensors and plain data, and are
loaded with ``torch.load(weights_only=True)``, so a checkpoint file can never run
code.

Why one module of about 640 lines: the step, its interrupt safety, checkpoints and
exact resume all read and write the same Trainer state; apart, each would reach into
the others' private fields.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from . import device as dev
from .losses import next_token_loss


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or exploded; the message says what to change."""


@dataclass
class TrainConfig:
    """How to train: every knob a chapter may turn, with the course's defaults."""

    max_steps: int = 1000  # optimizer steps
    lr: float = 2e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_frac: float = 0.05  # share of max_steps spent warming up linearly
    schedule: str = "cosine"  # "cosine" or "constant" (after warmup)
    weight_decay: float = 0.1  # on matrices only, not on biases or norms
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0  # max global gradient norm; None to turn off
    grad_accum: int = 1  # micro-batches per optimizer step
    device: str = "auto"
    seed: int = 0
    compile: bool | None = None  # torch.compile the model; None: on for CUDA, off for CPU/MPS
    log_every: int = 10  # record the loss every n steps (and the last step)
    eval_every: int = 0  # call eval_fn every n steps (0: only at the end)
    checkpoint_path: str | None = None  # where to save checkpoints (None: never)
    checkpoint_every: int = 0  # steps between checkpoints (0: only at the end)
    divergence_factor: float = 3.0  # smoothed loss this many times its best = diverged
    on_divergence: str = "raise"  # "raise" TrainingDiverged, or "stop" quietly
    progress: bool = True  # show a progress bar

    def __post_init__(self):
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 <= self.warmup_frac < 1:
            raise ValueError(f"warmup_frac must be in [0, 1), got {self.warmup_frac}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if self.compile is not None and not isinstance(self.compile, bool):
            raise ValueError(
                f"compile must be True, False or None (automatic), got {self.compile!r}")
        if self.on_divergence not in ("raise", "stop"):
            raise ValueError(f"on_divergence must be 'raise' or 'stop', got {self.on_divergence!r}")
        self.betas = tuple(self.betas)


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then cosine."""
    warmup = int(config.warmup_frac * config.max_steps)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "constant":
        return config.lr
    progress = (step - warmup) / max(1, config.max_steps - warmup)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def language_model_loss(model: nn.Module, batch) -> torch.Tensor:
    """The default loss: next-token cross-entropy on a batch (x, y)."""
    x, y = batch
    return next_token_loss(model(x), y)


class Callback:
    """Override any of these to watch training (live plots, widgets, logging)."""

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_step(self, trainer: Trainer, step: int, loss: float) -> None: ...
    def on_eval(self, trainer: Trainer, step: int, metrics: dict) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


@dataclass
class History:
    """What happened during training, for plots and claim checks."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # tokens seen after each logged step
    evals: list[dict] = field(default_factory=list)  # {"step": s, **metrics}
    seconds: float = 0.0
    diverged: str | None = None  # the divergence message, if the run stopped early


def _tokens_in(batch) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.numel()) if isinstance(first, torch.Tensor) else 0


class Trainer:
    """Train ``model`` on ``batches`` with ``loss_fn``; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        batches: Callable[[int], object],
        config: TrainConfig,
        loss_fn: Callable[[nn.Module, object], torch.Tensor] = language_model_loss,
        eval_fn: Callable[[nn.Module], dict] | None = None,
        callbacks: list[Callback] | None = None,
    ):
        self.config = config
        # under torchrun each process joins the group (and takes the GPU of its LOCAL_RANK)
        self.rank, self.world_size, self.device = dev.init_distributed(
            dev.pick_device(config.device))
        self.policy = dev.policy(self.device, compile=config.compile)
        if self.policy.tf32:
            dev.enable_tf32(self.device)
        self.model = model.to(self.device)
        self.batches, self.loss_fn, self.eval_fn = batches, loss_fn, eval_fn
        self.callbacks = list(callbacks or [])
        self.optimizer = _make_optimizer(self.model, config, self.policy.fused_adamw)
        self.scaler = torch.amp.GradScaler("cuda") if self.policy.grad_scaler else None
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        self.train_model = self.model  # what the loss function is given
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
            self.train_model = self.ddp
            dev.register_group_user(self)  # cleanup_distributed calls self.release()
        if self.policy.compile:
            self.train_model = torch.compile(self.train_model)
        self.step = 0  # optimizer steps completed
        self.history = History()
        self._tokens = 0
        self._ema: float | None = None
        self._best_ema = math.inf
        self._first_loss: float | None = None
        self._half_updated = False  # an exception stopped optimizer.step (see _train_step)

    def release(self) -> None:
        """Drop the DDP wrapper (``cleanup_distributed`` calls this before it ends the group).

        The model, its weights, the optimizer and the history stay, so the
        script can still save or evaluate; ``fit`` refuses to go on, since the
        ranks could no longer average their gradients.
        """
        self.ddp = None
        self.train_model = self.model

    @property
    def is_main(self) -> bool:
        """True in the process that logs and writes checkpoints (rank 0)."""
        return self.rank == 0

    # --- checkpoints -------------------------------------------------------
    def state_dict(self) -> dict:
        """The full training state, as tensors and plain Python data only.

        ``torch.load(weights_only=True)`` reads such a file without unpickling
        any code; the history and config go through ``_plain`` because metrics
        from an ``eval_fn`` are often numpy numbers, which it would refuse.
        """
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "step": self.step,
            "tokens": self._tokens,
            "guard": (self._ema, self._best_ema, self._first_loss),
            "history": _plain(asdict(self.history), "history"),
            "train_config": _plain(asdict(self.config), "train_config"),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write the full training state atomically (temp file, then rename).

        Under DDP every rank must call it (``fit`` does): the ranks' random
        states are gathered, and rank 0 alone writes the file.
        """
        path = path or self.config.checkpoint_path
        if path is None:
            return None
        rng_ranks = self._gather_rng_states() if self.world_size > 1 else None
        if self.rank != 0:
            return None
        state = self.state_dict()
        if rng_ranks is not None:
            state["rng_ranks"] = rng_ranks
        return atomic_torch_save(state, path)

    def _rng_state(self) -> dict:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    def _gather_rng_states(self) -> list[dict]:
        import torch.distributed as dist

        states = [None] * self.world_size
        dist.all_gather_object(states, self._rng_state())
        return states

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> int:
        """Restore a checkpoint written by ``save_checkpoint``; returns the step reached."""
        path = Path(path or self.config.checkpoint_path)
        state = load_checkpoint_file(path)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise ValueError(
                f"checkpoint {path} does not fit this model/optimizer ({e.__class__.__name__}): "
                "was it saved from a different configuration? Delete it to start afresh."
            ) from None
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self._tokens = state["step"], state["tokens"]
        self._ema, self._best_ema, self._first_loss = state["guard"]
        self.history = History(**state["history"])
        self._half_updated = False
        ranks = state.get("rng_ranks")
        if ranks is not None and len(ranks) == self.world_size:  # each rank its own state
            torch.set_rng_state(ranks[self.rank]["cpu"])
            if ranks[self.rank]["cuda"] is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(ranks[self.rank]["cuda"], self.device)
            return self.step
        torch.set_rng_state(state["rng_cpu"])
        if state.get("rng_cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        return self.step

    # --- the loop ----------------------------------------------------------
    def fit(self, resume: bool = False) -> History:
        """Train until ``max_steps``; with ``resume`` continue from the checkpoint if any."""
        cfg = self.config
        if self.world_size > 1 and self.ddp is None:  # release() has run
            raise RuntimeError("this Trainer has left the process group (cleanup_distributed() "
                               "released it): train before calling cleanup_distributed(), "
                               "or build a new Trainer in a new torchrun job")
        if resume and cfg.checkpoint_path and Path(cfg.checkpoint_path).exists():
            self.load_checkpoint()
        elif self._half_updated:
            raise RuntimeError(
                "the last training step was stopped by an exception inside optimizer.step, so "
                "the weights may be half-updated: go on from the last checkpoint with "
                "fit(resume=True) (TrainConfig.checkpoint_path), or build a new Trainer")
        elif self.step == 0:  # dropout and any sampling inside the loss; its own stream per rank
            torch.manual_seed(cfg.seed + self.rank)
        for cb in self.callbacks:
            cb.on_train_start(self)
        bar = _progress(cfg, self.step, self.rank)
        start = time.perf_counter() - self.history.seconds
        self.model.train()
        try:
            while self.step < cfg.max_steps:
                loss, problem = self._train_step()  # the step is recorded, or not done at all
                self.history.seconds = time.perf_counter() - start
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                if problem:
                    if cfg.on_divergence == "raise":
                        raise TrainingDiverged(problem)
                    break
                # stopped from here on, the step stays done: fit() goes on with the next one
                last = self.step == cfg.max_steps
                for cb in self.callbacks:
                    cb.on_step(self, self.step, loss)
                if self.eval_fn and ((cfg.eval_every and self.step % cfg.eval_every == 0)
                                     or last):
                    self.evaluate()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and not last:
                    self.save_checkpoint()
        finally:  # also on Ctrl-C, so that the next fit() starts a fresh bar
            if bar is not None:
                bar.close()
        if self.history.diverged is None and cfg.checkpoint_path:
            self.save_checkpoint()
        self.model.eval()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def evaluate(self) -> dict:
        metrics = dict(self.eval_fn(self.model))
        self.model.train()
        self.history.evals.append({"step": self.step, **metrics})
        for cb in self.callbacks:
            cb.on_eval(self, self.step, metrics)
        return metrics

    def _train_step(self) -> tuple[float, str | None]:
        """One optimizer step, all or nothing; returns its loss and any divergence message.

        Ctrl-C raises KeyboardInterrupt wherever Python happens to be, so the step
        has two phases. While the gradients are summed (forward and backward of
        every micro-batch) it may stop anywhere: what it leaves (a half-summed
        ``.grad``, dropout's draws from the random stream, a GradScaler that has
        unscaled) is undone, or cleared when the next step starts, and the step
        is done again from scratch, identically. From unscaling to recording
        the step (clip, ``optimizer.step``, the scaler's update, step counter,
        tokens, history and divergence guard), Ctrl-C is held and raised just
        after, with the step done and recorded. The learning rate is
        ``lr_at(self.step)``, set anew at each step's start, so the schedule
        moves only with the recorded step counter. So ``fit()`` after Ctrl-C
        goes on exactly as an unstopped run, bit for bit on the CPU.

        An exception raised from inside ``optimizer.step`` itself (an optimizer
        hook, an error; not Ctrl-C) cannot be undone: the weights may be
        half-updated, and ``fit`` then refuses to go on except from a checkpoint.
        """
        self.optimizer.zero_grad(set_to_none=True)  # a stopped step's partial sums
        rng = self._step_rng_state()  # cheap: a few KB, no device sync
        phase = "gradients"
        try:
            loss, tokens = self._sum_gradients()
            with _HeldInterrupts():
                self._unscale_and_clip()
                phase = "update"
                self._update()
                problem = self._record_step(loss, tokens)
                phase = "done"
        except BaseException:
            if phase == "gradients":
                self._forget_step(rng)
            elif phase == "update":
                self._half_updated = True
            raise
        return loss, problem

    def _step_rng_state(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def _forget_step(self, rng: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        """Undo what a step stopped before its update did, so that it can be redone exactly."""
        self.optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(rng[0])  # dropout's masks are drawn again, the same ones
        if rng[1] is not None:
            torch.cuda.set_rng_state(rng[1], self.device)
        # else the redone step's unscale_() fails: "already been called" (a private dict)
        per_optimizer = getattr(self.scaler, "_per_optimizer_states", None)
        if per_optimizer is not None:
            per_optimizer.pop(id(self.optimizer), None)

    def _sum_gradients(self) -> tuple[float, int]:
        """Forward and backward every micro-batch: the step's loss and tokens (global)."""
        cfg = self.config
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        losses = []  # kept as tensors: reading them only after the last micro-batch saves syncs
        tokens = 0  # added to self._tokens only when the step is recorded
        for micro in range(cfg.grad_accum):
            index = (self.step * cfg.grad_accum + micro) * self.world_size + self.rank
            batch = dev.to_device(self.batches(index), self.device)
            tokens += _tokens_in(batch) * self.world_size
            # DDP all-reduces the gradients in the backward pass of the last micro-batch only
            sync = micro == cfg.grad_accum - 1 or self.ddp is None
            ctx = self.ddp.no_sync() if not sync else _nullcontext()
            with ctx, self._autocast():
                loss = self.loss_fn(self.train_model, batch)
                if cfg.grad_accum > 1:  # (x / 1 == x exactly: skip the extra kernel)
                    loss = loss / cfg.grad_accum
            with ctx:
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            losses.append(loss.detach())
        total = 0.0
        for loss in losses:  # the same float64 sum, in the same order, as one float at a time
            total += float(loss)
        if self.world_size > 1:  # report the mean loss over workers
            t = torch.tensor([total], device=self.device)
            torch.distributed.all_reduce(t)
            total = float(t) / self.world_size
        return total, tokens

    def _unscale_and_clip(self) -> None:
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)

    def _update(self) -> None:
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # frees the memory between steps

    def _record_step(self, loss: float, tokens: int) -> str | None:
        """Count the step just applied: step counter, tokens, divergence guard, history."""
        cfg = self.config
        self.step += 1
        self._tokens += tokens
        problem = self._check_divergence(loss)
        if problem:
            self.history.diverged = problem
            return problem
        if self.step % cfg.log_every == 0 or self.step == cfg.max_steps or self.step == 1:
            self.history.steps.append(self.step)
            self.history.loss.append(loss)
            self.history.lr.append(lr_at(self.step - 1, cfg))
            self.history.tokens.append(self._tokens)
        return None

    def _autocast(self):
        dtype = self.policy.autocast_dtype
        return _nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def _check_divergence(self, loss: float) -> str | None:
        cfg = self.config
        lr = lr_at(self.step - 1, cfg)
        if not math.isfinite(loss):
            return self._divergence_message(f"the loss became {loss} at step {self.step}", lr)
        if self._first_loss is None:
            self._first_loss = loss
        self._ema = loss if self._ema is None else 0.9 * self._ema + 0.1 * loss
        self._best_ema = min(self._best_ema, self._ema)
        if self._ema > cfg.divergence_factor * self._best_ema and self._ema > self._first_loss:
            return self._divergence_message(
                f"the loss exploded to {self._ema:.3g} at step {self.step} "
                f"(its best was {self._best_ema:.3g})", lr)
        return None

    def _divergence_message(self, what: str, lr: float) -> str:
        cfg = self.config
        msg = (f"Training diverged: {what}, with learning rate {lr:.2e} (peak lr={cfg.lr:.2e}). "
               f"The learning rate is the likely cause: try lr={cfg.lr / 10:.1e}")
        if cfg.grad_clip is None:
            msg += " or turn on gradient clipping (grad_clip=1.0)"
        msg += "."
        if cfg.checkpoint_path and Path(cfg.checkpoint_path).exists():
            msg += f" The last good checkpoint is kept at {cfg.checkpoint_path}."
        return msg


class _HeldInterrupts:
    """Hold Ctrl-C (SIGINT) back until the block ends, then raise it as usual.

    Python turns SIGINT into KeyboardInterrupt at whatever line runs next; inside
    this block the signal is only noted, and the handler that was there before
    (in a notebook or script, Python's, which raises KeyboardInterrupt) is called
    when the block is done. Signal handlers can be set only in the main thread;
    elsewhere, or where SIGINT's handler was not set from Python, the block runs
    unprotected.
    """

    def __enter__(self):
        self._previous, self._pending = None, None
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if previous is None:  # set from C: it could not be put back
            return self
        try:
            signal.signal(signal.SIGINT, self._note)
        except ValueError:  # not the main interpreter
            return self
        self._previous = previous
        return self

    def _note(self, signum, frame):
        self._pending = (signum, frame)

    def __exit__(self, exc_type, exc, tb):
        if self._previous is None:
            return False
        signal.signal(signal.SIGINT, self._previous)
        if self._pending is not None and exc_type is None:  # else that error goes on
            if callable(self._previous):
                self._previous(*self._pending)  # Python's handler raises KeyboardInterrupt
            elif self._previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)  # what SIGINT would have done: end
        return False


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _make_optimizer(model: nn.Module, config: TrainConfig, fused: bool):
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    seen, decay, no_decay = set(), [], []
    for p in params:  # tied weights appear once
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    extra = {"fused": True} if fused else {}
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, **extra)


def _progress(config: TrainConfig, initial: int, rank: int):
    if not config.progress or rank != 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.max_steps, initial=initial, desc="training", unit="step",
                mininterval=0.5)


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same folder, flush to disk, then rename.

    A crash mid-write leaves the previous file intact: os.replace is atomic. An
    exception mid-write (Ctrl-C, a full disk, an object that cannot be saved)
    also removes the temporary file, which would otherwise stay behind, hidden.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _plain(value, where: str):
    """``value`` as data that ``torch.load(weights_only=True)`` accepts, or a TypeError.

    Tensors, None, bools, numbers, strings and lists, tuples and dicts of them
    pass; numpy numbers and arrays (what many metrics are) become Python ones,
    as do subclasses such as numpy.float64, which pickle as numpy objects.
    Anything else is refused here, when saving, naming it: written into a
    checkpoint it could only be read back by unpickling, which may run code.
    """
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, os.PathLike):    # TrainConfig.checkpoint_path may be a Path
        return os.fspath(value)
    for kind in (bool, int, float, str):  # bool first: it is an int
        if isinstance(value, kind):
            return value if type(value) is kind else kind(value)
    if isinstance(value, dict):
        return {_plain(k, where): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(
        f"cannot checkpoint {where}: it is a {type(value).__name__}, and a checkpoint holds "
        "only tensors and plain data (numbers, strings, lists, dicts), so that loading it "
        "never runs code. An eval_fn must return numbers, strings or tensors.")


def _unsafe_globals(path: Path) -> list[str]:
    """The Python objects a torch file would unpickle beyond plain data (read, not run)."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip file at all: corrupt
        return []


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    """Load a training checkpoint, with an error that says what to do if it is bad."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train first, or check the path")
    try:  # weights_only: tensors and plain data only; nothing in the file is ever run
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, Python objects, ...
        unsafe = _unsafe_globals(path)
        if unsafe or "unsupported global" in str(e).lower():  # torch's words for them
            shown = ", ".join(unsafe[:3]) + (", ..." if len(unsafe) > 3 else "")
            raise ValueError(
                f"refused to load checkpoint {path}: it holds Python objects, not only tensors "
                f"and plain data ({shown or 'see torch.load'}), and unpickling them could run "
                "any code. Trainer checkpoints hold none: delete it and train again. Load it "
                "yourself with torch.load(..., weights_only=False) only if you trust who wrote it."
            ) from None
        raise ValueError(
            f"checkpoint {path} is corrupt or not a training checkpoint ({e.__class__.__name__}): "
            "delete it and train again"
        ) from None
    if not isinstance(state, dict) or not {"model", "optimizer", "step"} <= set(state):
        raise ValueError(f"{path} is not a Trainer checkpoint: delete it and train again")
    return state
