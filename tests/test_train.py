from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import asdict

import numpy as np
import pytest
import torch

from llmtrain.core.batches import LMBatches
from llmtrain.core.losses import next_token_loss
from llmtrain.core.model import GPT, preset
from llmtrain.core.train import (
    Callback,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    atomic_torch_save,
    load_checkpoint_file,
    lr_at,
)

# a learnable stream: a fixed random phrase of 23 tokens, repeated
TOKENS = torch.randint(0, 50, (23,), generator=torch.Generator().manual_seed(1)).repeat(200)


def _trainer(tmp_path=None, dropout=0.1, **overrides):
    torch.manual_seed(0)
    model = GPT(preset("nano", vocab_size=50, block_size=16, dropout=dropout))
    cfg = dict(max_steps=20, lr=3e-3, progress=False, checkpoint_every=5)
    if tmp_path is not None:
        cfg["checkpoint_path"] = str(tmp_path / "ckpt.pt")
    cfg.update(overrides)
    return Trainer(model, LMBatches(TOKENS, 16, 8, seed=0), TrainConfig(**cfg))


# A script run in a child process, so that it can be killed with SIGKILL.
SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {tests!r})
    from test_train import _trainer
    from llmtrain.core.train import Callback
    from pathlib import Path

    class Kill(Callback):
        def on_step(self, trainer, step, loss):
            if step == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)

    trainer = _trainer(Path({tmp!r}))
    trainer.callbacks.append(Kill())
    trainer.fit(resume=True)
""")


def test_killed_run_resumes_to_exactly_the_uninterrupted_weights(tmp_path):
    reference = _trainer()
    reference.fit()

    script = SCRIPT.format(tests=os.path.dirname(__file__), tmp=str(tmp_path), kill_at=13)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_checkpoint_file(tmp_path / "ckpt.pt")["step"] == 10  # the last checkpoint

    resumed = _trainer(tmp_path)
    resumed.fit(resume=True)
    assert resumed.step == 20
    for (name, a), b in zip(reference.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
    opt_a, opt_b = reference.optimizer.state_dict(), resumed.optimizer.state_dict()
    for key, state in opt_a["state"].items():
        for k, v in state.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(opt_b["state"][key][k]))
    assert reference.history.loss == resumed.history.loss


def test_checkpoint_writes_are_atomic(tmp_path):
    trainer = _trainer(tmp_path, max_steps=5)
    trainer.fit()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "ckpt.pt"]
    assert leftovers == []


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="corrupt.*delete it"):
        _trainer(tmp_path).fit(resume=True)


def test_parameters_change_and_loss_falls():
    trainer = _trainer(dropout=0.0, max_steps=40, log_every=1)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    history = trainer.fit()
    assert all(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert history.loss[-1] < history.loss[0] - 0.3
    assert history.tokens[-1] == 40 * 8 * 16


def test_diverging_learning_rate_stops_with_advice(tmp_path):
    trainer = _trainer(tmp_path, lr=50.0, grad_clip=None, max_steps=60, checkpoint_every=1,
                       warmup_frac=0.0)
    with pytest.raises(TrainingDiverged, match="learning rate is the likely cause"):
        trainer.fit()
    state = load_checkpoint_file(tmp_path / "ckpt.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    # the same run in "stop" mode ends quietly and records why
    quiet = _trainer(lr=50.0, grad_clip=None, max_steps=60, warmup_frac=0.0,
                     on_divergence="stop")
    history = quiet.fit()
    assert history.diverged and quiet.step < 60


def test_gradient_accumulation_equals_a_big_batch():
    torch.manual_seed(0)
    model_a = GPT(preset("nano", vocab_size=50, block_size=16))
    model_b = GPT(preset("nano", vocab_size=50, block_size=16))
    model_b.load_state_dict(model_a.state_dict())
    small = LMBatches(TOKENS, 16, 4, seed=0)

    def big(i):  # two consecutive small batches, as one
        xs, ys = zip(*(small(2 * i + k) for k in range(2)))
        return torch.cat(xs), torch.cat(ys)

    cfg = dict(max_steps=3, progress=False)
    Trainer(model_a, small, TrainConfig(grad_accum=2, **cfg)).fit()
    Trainer(model_b, big, TrainConfig(**cfg)).fit()
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(max_steps=100, lr=1.0, warmup_frac=0.1, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize("bad", [dict(lr=-1), dict(lr=math.nan), dict(max_steps=0),
                                 dict(schedule="linear"), dict(on_divergence="ignore")])
def test_bad_train_configs_say_what_to_change(bad):
    with pytest.raises(ValueError, match="must"):
        TrainConfig(**bad)


def test_callbacks_and_eval_are_called():
    seen = []

    class Record(Callback):
        def on_step(self, trainer, step, loss):
            seen.append(step)

        def on_eval(self, trainer, step, metrics):
            seen.append(("eval", step, metrics["answer"]))

    trainer = _trainer(max_steps=4, eval_every=2)
    trainer.eval_fn = lambda model: {"answer": 42}
    trainer.callbacks.append(Record())
    trainer.fit()
    assert seen == [1, 2, ("eval", 2, 42), 3, 4, ("eval", 4, 42)]


# --- interrupted steps -------------------------------------------------------
# Ctrl-C (a notebook's stop button) may land anywhere in a step. Each test stops step
# STOPPED_STEP at one point, calls fit() again, and needs the very weights and history of a
# run that was never stopped: nothing of the stopped step (a half-summed gradient, a random
# stream moved on by dropout, tokens counted twice, a half-done update) may survive.
STOPPED_STEP = 2  # 0-based: the third step is stopped
_REAL_CLIP, _REAL_SAVE = torch.nn.utils.clip_grad_norm_, torch.save  # before any patching
POINTS = {  # where a step is stopped, and how many steps are recorded by then
    "forward of micro-batch 2": STOPPED_STEP,
    "backward of micro-batch 2": STOPPED_STEP,  # some .grad already summed, others not
    "before clipping": STOPPED_STEP,
    "after clipping": STOPPED_STEP,
    "optimizer.step, before the update": STOPPED_STEP,  # a step pre-hook
    "optimizer.step, after the update": STOPPED_STEP,  # a step post-hook
    "a callback": STOPPED_STEP + 1,  # the step is recorded before callbacks run
    "saving a checkpoint": STOPPED_STEP + 1,
}
HELD = {"before clipping", "after clipping",  # Ctrl-C here waits until the step is recorded
        "optimizer.step, before the update", "optimizer.step, after the update"}


class _Stop:
    """Stops training once, at ``point``: ``how="ctrl_c"`` sends SIGINT (what Ctrl-C and a
    notebook's stop button do: Python raises KeyboardInterrupt at its next chance, unless
    the handler is held), ``how="raise"`` raises KeyboardInterrupt right there."""

    def __init__(self, point: str | None, how: str = "raise"):
        self.point, self.how, self.armed = point, how, point is not None
        self.trainer: Trainer | None = None
        self.micro = 0  # micro-batches started in the stopped step

    def __call__(self, point: str) -> None:
        if not self.armed or point != self.point or self.trainer.step != POINTS[point]:
            return
        if "micro-batch 2" in point and self.micro != 2:
            return
        self.armed = False
        if self.how == "ctrl_c":
            signal.raise_signal(signal.SIGINT)
        else:
            raise KeyboardInterrupt


def _stoppable_trainer(folder, stop: _Stop, monkeypatch, scaler=False) -> Trainer:
    """Four steps of two micro-batches, with dropout, a checkpoint after each step, and a
    ``stop`` hooked in at every point of a step."""
    trainer = _trainer(folder, max_steps=4, grad_accum=2, log_every=1, checkpoint_every=1)
    stop.trainer = trainer
    if scaler:  # the float16 path's GradScaler, here on the CPU (powers of 2: exact)
        trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)

    def loss_fn(model, batch):
        x, y = batch
        if trainer.step == STOPPED_STEP:
            stop.micro += 1
        logits = model(x)  # dropout has drawn from the random stream
        stop("forward of micro-batch 2")
        return next_token_loss(logits, y)

    trainer.loss_fn = loss_fn
    for p in trainer.model.parameters():
        p.register_post_accumulate_grad_hook(lambda p: stop("backward of micro-batch 2"))

    def clip(*args, **kwargs):
        stop("before clipping")
        norm = _REAL_CLIP(*args, **kwargs)
        stop("after clipping")
        return norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    trainer.optimizer.register_step_pre_hook(
        lambda *_: stop("optimizer.step, before the update"))
    trainer.optimizer.register_step_post_hook(
        lambda *_: stop("optimizer.step, after the update"))

    class StopInCallback(Callback):
        def on_step(self, trainer, step, loss):
            stop("a callback")

    trainer.callbacks.append(StopInCallback())
    def save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 the first bytes of a checkpoint")
        stop("saving a checkpoint")
        f.seek(0)
        _REAL_SAVE(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    return trainer


def _assert_same_run(reference: Trainer, trainer: Trainer) -> None:
    assert trainer.step == reference.step
    for (name, a), b in zip(reference.model.state_dict().items(),
                            trainer.model.state_dict().values()):
        assert torch.equal(a, b), (
            f"{name} differs from the uninterrupted run by up to {(a - b).abs().max():.3g}")
    opt_a, opt_b = reference.optimizer.state_dict(), trainer.optimizer.state_dict()
    for key, state in opt_a["state"].items():
        for k, v in state.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(opt_b["state"][key][k])), k
    history_a, history_b = asdict(reference.history), asdict(trainer.history)
    history_a.pop("seconds"), history_b.pop("seconds")
    assert history_a == history_b


@pytest.fixture
def python_sigint():
    """SIGINT handled as in a notebook cell: Python's handler raises KeyboardInterrupt."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize("how", ["ctrl_c", "raise"])
@pytest.mark.parametrize("point", list(POINTS))
def test_an_interrupted_step_leaves_no_trace(tmp_path, monkeypatch, python_sigint, point, how):
    reference = _stoppable_trainer(tmp_path / "reference", _Stop(None), monkeypatch)
    reference.fit()

    stop = _Stop(point, how)
    trainer = _stoppable_trainer(tmp_path / "stopped", stop, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert not stop.armed
    assert trainer.step == POINTS[point] + (how == "ctrl_c" and point in HELD)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    assert [p.name for p in (tmp_path / "stopped").iterdir()] == ["ckpt.pt"]  # no temp file
    if how == "raise" and point.startswith("optimizer.step"):
        # an exception from inside optimizer.step (not Ctrl-C, which is held until the
        # update is done) may leave the weights half-updated: fit() refuses to go on...
        with pytest.raises(RuntimeError, match="half-updated.*fit\\(resume=True\\)"):
            trainer.fit()
        trainer.fit(resume=True)  # ...and the last checkpoint continues exactly
    else:
        trainer.fit()
    _assert_same_run(reference, trainer)


@pytest.mark.parametrize("point", ["before clipping", "after clipping"])
def test_an_interrupt_after_unscaling_leaves_the_grad_scaler_ready(tmp_path, monkeypatch,
                                                                    point):
    reference = _stoppable_trainer(tmp_path / "reference", _Stop(None), monkeypatch,
                                   scaler=True)
    reference.fit()
    trainer = _stoppable_trainer(tmp_path / "stopped", _Stop(point), monkeypatch, scaler=True)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    trainer.fit()  # unscale_() must not think it has already run for this step
    _assert_same_run(reference, trainer)
    assert trainer.scaler.state_dict() == reference.scaler.state_dict()


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_an_interrupted_checkpoint_write_leaves_no_temporary_file(tmp_path, monkeypatch,
                                                                   error):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"step": 1}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise error("stopped mid-write")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(error):
        atomic_torch_save({"step": 2}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert torch.load(path, weights_only=True) == {"step": 1}  # the last good one is kept


# --- checkpoints are data, never code ------------------------------------------
EXECUTED: list[str] = []


def _run_payload(note: str) -> str:
    EXECUTED.append(note)
    return note


class Payload:
    """Unpickling this calls ``_run_payload``: it stands for any code hidden in a file."""

    def __reduce__(self):
        return _run_payload, ("the payload ran",)


def test_a_checkpoint_holding_pickled_code_is_refused_not_run(tmp_path):
    _trainer(tmp_path, max_steps=2).fit()
    path = tmp_path / "ckpt.pt"
    state = torch.load(path, weights_only=True)
    state["history"]["evals"].append({"step": 2, "note": Payload()})
    torch.save(state, path)
    with pytest.raises(ValueError, match="refused") as info:
        _trainer(tmp_path, max_steps=4).fit(resume=True)
    assert str(path) in str(info.value) and "_run_payload" in str(info.value)
    assert EXECUTED == []


def test_checkpoints_hold_only_plain_data(tmp_path):
    trainer = _trainer(tmp_path, max_steps=4, eval_every=2)
    trainer.eval_fn = lambda model: {"np": np.float64(0.25), "array": np.arange(2),
                                     "tensor": torch.tensor(1.5), "n": 3}
    trainer.fit()
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)  # no unpickling needed
    evals = state["history"]["evals"]
    assert type(evals[-1]["np"]) is float and evals[-1]["array"] == [0, 1]
    resumed = _trainer(tmp_path, max_steps=6, eval_every=2)
    resumed.eval_fn = trainer.eval_fn
    resumed.fit(resume=True)
    assert [e["step"] for e in resumed.history.evals] == [2, 4, 6]

    trainer.eval_fn = lambda model: {"model": model}
    trainer.evaluate()
    with pytest.raises(TypeError, match="evals.*GPT.*numbers"):
        trainer.save_checkpoint()
