"""A model-agnostic training loop: the same Trainer trains every model in the course.

The Trainer knows nothing about GPTs. It is given
* a model (any ``nn.Module``),
* ``batches``: a function from a batch index to a batch (see ``data.LMBatches``),
* ``loss_fn(model, batch) -> scalar tensor`` (default: next-token loss on (x, y)),
and it runs AdamW with warmup and cosine decay, gradient accumulation and
clipping, mixed precision on GPUs, optional ``torch.compile``, data-parallel
training under ``torchrun``, atomic checkpoints with exact resume, and a guard
that stops a diverging run with a message instead of training on NaNs.

Plots and widgets attach through callbacks (``Callback.on_step`` etc.).
"""

from __future__ import annotations

import math
import os
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
    compile: bool = False  # torch.compile the model (worth it on GPUs)
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


def _to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


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
        self.device = dev.pick_device(config.device)
        self.rank, self.world_size = _distributed_setup(self.device)
        self.model = model.to(self.device)
        self.batches, self.loss_fn, self.eval_fn = batches, loss_fn, eval_fn
        self.callbacks = list(callbacks or [])
        self.optimizer = _make_optimizer(self.model, config, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if dev.needs_grad_scaler(self.device) else None
        self.train_model = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if config.compile:
            self.train_model = torch.compile(self.train_model)
        self.step = 0  # optimizer steps completed
        self.history = History()
        self._tokens = 0
        self._ema: float | None = None
        self._best_ema = math.inf
        self._first_loss: float | None = None

    # --- checkpoints -------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "step": self.step,
            "tokens": self._tokens,
            "guard": (self._ema, self._best_ema, self._first_loss),
            "history": asdict(self.history),
            "train_config": asdict(self.config),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write the full training state atomically (temp file, then rename)."""
        path = path or self.config.checkpoint_path
        if path is None or self.rank != 0:
            return None
        return atomic_torch_save(self.state_dict(), path)

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
        torch.set_rng_state(state["rng_cpu"])
        if state.get("rng_cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        return self.step

    # --- the loop ----------------------------------------------------------
    def fit(self, resume: bool = False) -> History:
        """Train until ``max_steps``; with ``resume`` continue from the checkpoint if any."""
        cfg = self.config
        if resume and cfg.checkpoint_path and Path(cfg.checkpoint_path).exists():
            self.load_checkpoint()
        elif self.step == 0:
            torch.manual_seed(cfg.seed)  # dropout and any sampling inside the loss
        for cb in self.callbacks:
            cb.on_train_start(self)
        bar = _progress(cfg, self.step, self.rank)
        start = time.perf_counter() - self.history.seconds
        self.model.train()
        while self.step < cfg.max_steps:
            loss = self._train_step()
            self.step += 1
            self.history.seconds = time.perf_counter() - start
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            problem = self._check_divergence(loss)
            if problem:
                self.history.diverged = problem
                if bar is not None:
                    bar.close()
                if cfg.on_divergence == "raise":
                    raise TrainingDiverged(problem)
                break
            last = self.step == cfg.max_steps
            if self.step % cfg.log_every == 0 or last or self.step == 1:
                self.history.steps.append(self.step)
                self.history.loss.append(loss)
                self.history.lr.append(lr_at(self.step - 1, cfg))
                self.history.tokens.append(self._tokens)
            for cb in self.callbacks:
                cb.on_step(self, self.step, loss)
            if self.eval_fn and ((cfg.eval_every and self.step % cfg.eval_every == 0) or last):
                self.evaluate()
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and not last:
                self.save_checkpoint()
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

    def _train_step(self) -> float:
        cfg = self.config
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = 0.0
        for micro in range(cfg.grad_accum):
            index = (self.step * cfg.grad_accum + micro) * self.world_size + self.rank
            batch = _to_device(self.batches(index), self.device)
            self._tokens += _tokens_in(batch) * self.world_size
            sync = micro == cfg.grad_accum - 1 or self.world_size == 1
            ctx = self.train_model.no_sync() if not sync else _nullcontext()
            with ctx, dev.autocast(self.device):
                loss = self.loss_fn(self.train_model, batch) / cfg.grad_accum
            with ctx:
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            total += float(loss.detach())
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.world_size > 1:  # report the mean loss over workers
            t = torch.tensor([total], device=self.device)
            torch.distributed.all_reduce(t)
            total = float(t) / self.world_size
        return total

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


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device):
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
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, **extra)


def _distributed_setup(device: torch.device) -> tuple[int, int]:
    """Join the process group started by torchrun, if any: returns (rank, world_size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _progress(config: TrainConfig, initial: int, rank: int):
    if not config.progress or rank != 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.max_steps, initial=initial, desc="training", unit="step",
                mininterval=0.5)


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same folder, flush to disk, then rename.

    A crash mid-write leaves the previous file intact: os.replace is atomic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    """Load a training checkpoint, with an error that says what to do if it is bad."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train first, or check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated, not a torch file, ...
        raise ValueError(
            f"checkpoint {path} is corrupt or not a training checkpoint ({e.__class__.__name__}): "
            "delete it and train again"
        ) from None
    if not isinstance(state, dict) or not {"model", "optimizer", "step"} <= set(state):
        raise ValueError(f"{path} is not a Trainer checkpoint: delete it and train again")
    return state
