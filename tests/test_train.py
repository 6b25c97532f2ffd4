from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from llmtrain.core.batches import LMBatches
from llmtrain.core.model import GPT, preset
from llmtrain.core.train import (
    Callback,
    TrainConfig,
    Trainer,
    TrainingDiverged,
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
