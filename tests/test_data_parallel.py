"""Data-parallel training: under torchrun (CPU, gloo) it equals one process with
accumulation and resumes exactly after a crash; the ring all-reduce and the
workers that chapter 13 starts from a notebook (``llmtrain.scale.data_parallel``, ``.workers``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from llmtrain.core.batches import LMBatches
from llmtrain.core.model import GPT, preset
from llmtrain.core.train import TrainConfig, Trainer
from llmtrain.scale import allreduce, data_parallel
from llmtrain.scale.comm_cost import ring_all_reduce_bytes
from llmtrain.scale.workers import WorkerFailed, Workers, launch

SCRIPT = textwrap.dedent("""
    import gc, sys, weakref, torch
    from llmtrain.core.batches import LMBatches
    from llmtrain.core.device import cleanup_distributed
    from llmtrain.core.model import GPT, preset
    from llmtrain.core.train import Trainer, TrainConfig

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
    ddp = weakref.ref(trainer.ddp) if trainer.ddp is not None else None
    cleanup_distributed()  # let every rank finish before gloo's threads are torn down
    gc.collect()
    # the DDP wrapper held the group: it is gone, so the group ended here, not at exit
    assert ddp is None or ddp() is None, "the DDP wrapper outlived cleanup_distributed()"
    assert trainer.ddp is None and trainer.train_model is model
    try:  # its ranks can no longer average gradients: training on must be refused
        trainer.fit()
    except RuntimeError as e:
        assert trainer.world_size > 1 and "left the process group" in str(e), e
    else:
        assert trainer.world_size == 1, "a released trainer trained on"
""")


@pytest.mark.slow
def test_two_workers_match_one_worker_with_two_micro_batches(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one.pt"), "2"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", str(script), str(tmp_path / "two.pt"), "1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode == 0, _output(ddp)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    for name in one:
        torch.testing.assert_close(one[name], two[name], atol=1e-5, rtol=1e-4, msg=name)


# A crash-and-resume run under torchrun: "full" trains 20 steps; "crash" checkpoints every
# 5 steps and rank 1 is killed (SIGKILL) at step 13; "resume" restarts from the checkpoint.
RESUME_SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    from llmtrain.core.batches import LMBatches
    from llmtrain.core.device import cleanup_distributed
    from llmtrain.core.model import GPT, preset
    from llmtrain.core.train import Callback, Trainer, TrainConfig

    mode, ckpt, out = sys.argv[1:4]
    torch.manual_seed(0 if mode != "resume" else 1)  # a restarted job starts from other weights
    tokens = torch.randint(0, 40, (17,), generator=torch.Generator().manual_seed(2)).repeat(100)
    model = GPT(preset("nano", vocab_size=40, block_size=16, dropout=0.1))

    class Kill(Callback):
        def on_step(self, trainer, step, loss):
            if mode == "crash" and step == 13 and trainer.rank == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    cfg = TrainConfig(max_steps=20, device="cpu", progress=False, log_every=1,
                      checkpoint_path=None if mode == "full" else ckpt, checkpoint_every=5)
    trainer = Trainer(model, LMBatches(tokens, 16, 4, seed=0), cfg, callbacks=[Kill()])
    trainer.fit(resume=mode == "resume")
    if trainer.is_main:
        torch.save({"state": model.state_dict(), "loss": trainer.history.loss}, out)
    cleanup_distributed()
""")


def _output(proc, keep=4000):
    """What a failed run printed: the start (a rank's own traceback or abort comes first)
    and the end (torchrun's summary), so a failure report shows which rank failed where."""
    text = proc.stdout[-keep:] + proc.stderr
    return text if len(text) <= 2 * keep else text[:keep] + "\n[...]\n" + text[-keep:]


def _torchrun(script, *args):
    """torchrun on 2 CPU processes; --standalone picks a free port (the machine is shared)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_a_killed_ddp_run_resumes_to_exactly_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    ckpt = tmp_path / "ckpt.pt"
    full = _torchrun(script, "full", ckpt, tmp_path / "full.pt")
    assert full.returncode == 0, _output(full)
    crash = _torchrun(script, "crash", ckpt, tmp_path / "crash.pt")
    assert crash.returncode != 0 and not (tmp_path / "crash.pt").exists(), _output(crash)
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 10  # the last checkpoint before the kill, written by rank 0 alone
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files
    ranks = state["rng_ranks"]  # each rank's own dropout stream, saved for the resume
    assert len(ranks) == 2 and not torch.equal(ranks[0]["cpu"], ranks[1]["cpu"])
    resumed = _torchrun(script, "resume", ckpt, tmp_path / "resumed.pt")
    assert resumed.returncode == 0, _output(resumed)
    a, b = torch.load(tmp_path / "full.pt"), torch.load(tmp_path / "resumed.pt")
    for name in a["state"]:
        assert torch.equal(a["state"][name], b["state"][name]), f"{name} differs after resume"
    assert a["loss"] == b["loss"]


# --- scale.allreduce, scale.data_parallel and scale.workers: the notebook's workers ---

TOKENS = torch.randint(0, 40, (17,), generator=torch.Generator().manual_seed(2)).repeat(100)
NANO = preset("nano", vocab_size=40, block_size=16)


@pytest.mark.parametrize("n_workers", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("values", [1, 5, 64, 1001])
def test_simulated_ring_all_reduce_gives_everyone_the_sum(n_workers, values):
    tensors = [torch.randn(values, dtype=torch.float64) for _ in range(n_workers)]
    results, sent = allreduce.simulate_ring_all_reduce(tensors)
    total = torch.stack(tensors).sum(0)
    for r in results:
        torch.testing.assert_close(r, total)
    assert sum(sent) == pytest.approx(n_workers * ring_all_reduce_bytes(values, n_workers, 8),
                                      abs=8 * 2 * n_workers)  # uneven chunks: a value or so off


def test_ring_schedule_sends_right_and_receives_from_the_left():
    plan = allreduce.ring_schedule(4)
    assert [phase for phase, _ in plan] == ["reduce-scatter"] * 3 + ["all-gather"] * 3
    for _, moves in plan:
        sent = {r: s for r, s, _ in moves}
        assert all(receive == sent[(r - 1) % 4] for r, _, receive in moves)
    with pytest.raises(ValueError, match="whole number"):
        allreduce.ring_schedule(0)


def test_merged_batches_hold_exactly_the_micro_batches():
    micro = LMBatches(TOKENS, 16, 2, seed=0)
    merged = data_parallel.MergedBatches(micro, 3)
    x, y = merged(1)
    assert torch.equal(x, torch.cat([micro(3)[0], micro(4)[0], micro(5)[0]]))
    assert torch.equal(y[-2:], micro(5)[1])
    with pytest.raises(ValueError, match="k must be"):
        data_parallel.MergedBatches(micro, 0)


def test_saved_activations_by_hand_and_growing_with_the_batch():
    layer = torch.nn.Linear(4, 3)
    loss = lambda m, x: m(x).pow(2).sum()
    # the product saves its input (5 x 4 floats) and pow saves its input (5 x 3): 140 bytes;
    # the weight is a parameter and does not count
    batch = torch.randn(5, 4, requires_grad=False)
    assert data_parallel.saved_activation_bytes(layer, batch, loss) == 140
    model = GPT(NANO)
    micro = LMBatches(TOKENS, 16, 2, seed=0)
    one, four = (data_parallel.saved_activation_bytes(model,
                                                      data_parallel.MergedBatches(micro, k)(0))
                 for k in (1, 4))
    assert 3.5 < four / one <= 4.0


def test_flat_gradients_round_trip():
    model = GPT(NANO)
    x, y = LMBatches(TOKENS, 16, 2)(0)
    torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
    flat = data_parallel.flat_gradients(model)
    assert flat.numel() == model.num_params()
    data_parallel.set_flat_gradients(model, flat * 0 + 1)
    assert all(torch.all(p.grad == 1) for p in model.parameters())


def test_workers_refuse_what_a_new_process_cannot_import():
    def local(rank, world):
        return rank

    with pytest.raises(ValueError, match="world_size"):
        Workers(0)
    local.__module__ = "__main__"  # as if written in a notebook cell
    with pytest.raises(ValueError, match="cannot import it"):
        launch(local, 1)


@pytest.fixture(scope="module")
def three():
    with Workers(3, timeout=180) as workers:
        yield workers


@pytest.mark.slow
def test_ring_and_naive_all_reduce_in_three_processes_equal_torchs(three):
    ranks = three.run(allreduce.all_reduce_worker, [2, 3000], 1)
    for result in ranks:
        for row in result["rows"]:
            assert row["ring_ok"] and row["naive_ok"], row
    big = ranks[1]["rows"][1]  # 3,000 float32 values: 2 * 2/3 * 12,000 bytes per worker
    assert big["ring_bytes"] == ring_all_reduce_bytes(3000, 3) == 16000
    assert ranks[0]["rows"][1]["naive_bytes"] == 2 * 12000 and big["naive_bytes"] == 12000


@pytest.mark.slow
def test_by_hand_the_copies_stay_identical_only_with_the_all_reduce(three):
    batches = LMBatches(TOKENS, 16, 2, seed=0)
    synced = three.run(data_parallel.train_by_hand, NANO, batches, 8, 3e-3, True)
    alone = three.run(data_parallel.train_by_hand, NANO, batches, 8, 3e-3, False)
    assert all(g == 0.0 for g in synced[0]["gaps"]) and synced[2]["gaps"] == synced[0]["gaps"]
    assert alone[0]["gaps"][-1] > 1e-3 and alone[0]["gaps"][-1] > alone[0]["gaps"][0]
    assert synced[0]["losses"] != synced[1]["losses"]  # different data on each worker
    expected = 8 * ring_all_reduce_bytes(GPT(NANO).num_params(), 3)  # 8 steps; chunks of the
    assert synced[0]["bytes_sent"] == pytest.approx(expected, abs=8 * 4 * 4)  # 102,208 values
    # split 3 ways differ by one value


@pytest.mark.slow
def test_ddp_in_three_workers_matches_one_process_and_resumes_after_a_crash(three, tmp_path):
    micro = LMBatches(TOKENS, 16, 2, seed=0)
    cfg = dict(max_steps=12, lr=3e-3, log_every=1)
    ddp = three.run(data_parallel.trainer_worker, NANO, micro, cfg)
    single = Trainer(data_parallel.make_gpt(NANO), micro, TrainConfig(grad_accum=3, device="cpu",
                                                          progress=False, **cfg))
    single.fit()
    assert ddp[0]["gap"] == 0.0 and ddp[0]["loss"] == ddp[2]["loss"]
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp[0]["state"][name], value, atol=1e-5, rtol=1e-4, msg=name)
    ckpt = dict(cfg, checkpoint_path=str(tmp_path / "run.pt"), checkpoint_every=4)
    crashed = three.run(data_parallel.trainer_worker, NANO, micro, ckpt, 7)
    assert crashed[0]["crashed"] == "worker 0 crashed at step 7"
    # equal to float rounding, not bit for bit: with 3 ranks the order of the sum a + b + c
    # depends on DDP's gradient buckets, which a restarted DDP forms anew (with 2 ranks,
    # a + b = b + a exactly: see the torchrun test above)
    for name, value in ddp[0]["state"].items():
        torch.testing.assert_close(crashed[1]["state"][name], value, atol=1e-6, rtol=1e-5,
                                   msg=name)
    assert crashed[0]["loss"] == pytest.approx(ddp[0]["loss"], abs=1e-5)


@pytest.mark.slow
def test_a_failing_job_stops_every_worker_with_the_error():
    workers = Workers(2, timeout=120)
    procs = list(workers._procs)
    with pytest.raises(WorkerFailed, match="max_steps must be a positive integer"):
        workers.run(data_parallel.trainer_worker, NANO, LMBatches(TOKENS, 16, 2), dict(max_steps=0))
    assert all(p.poll() is not None for p in procs)
    with pytest.raises(WorkerFailed, match="closed"):
        workers.run(allreduce.all_reduce_worker, [4])


@pytest.mark.slow
def test_an_overdue_job_stops_the_workers():
    workers = Workers(2, timeout=120)
    with pytest.raises(WorkerFailed, match="did not finish within"):
        workers.run(allreduce.all_reduce_worker, [10], 1, timeout=0.05)  # still starting up
    assert workers._procs == []
