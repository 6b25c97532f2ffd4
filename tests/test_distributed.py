"""Data-parallel training under torchrun (CPU, gloo) equals one process with accumulation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import sys, torch
    from llmtrain.data import LMBatches
    from llmtrain.model import GPT, preset
    from llmtrain.train import Trainer, TrainConfig

    torch.manual_seed(0)
    tokens = torch.randint(0, 40, (17,), generator=torch.Generator().manual_seed(2)).repeat(100)
    model = GPT(preset("nano", vocab_size=40, block_size=16))
    accum = int(sys.argv[2])
    trainer = Trainer(model, LMBatches(tokens, 16, 4, seed=0),
                      TrainConfig(max_steps=5, grad_accum=accum, device="cpu", progress=False))
    trainer.fit()
    if trainer.rank == 0:
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, sys.argv[1])
        print("losses", trainer.history.loss)
""")


@pytest.mark.slow
def test_two_workers_match_one_worker_with_two_micro_batches(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one.pt"), "2"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--master_port=29517", str(script), str(tmp_path / "two.pt"), "1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    for name in one:
        torch.testing.assert_close(one[name], two[name], atol=1e-5, rtol=1e-4, msg=name)
