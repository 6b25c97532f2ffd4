"""The device policy (checked with pretend devices), GPU specs, distributed helpers;
and, marked ``gpu``, what the Trainer does on a real CUDA GPU."""

from __future__ import annotations

import pytest
import torch

from llmtrain.core import device
from llmtrain.core.batches import LMBatches
from llmtrain.core.model import GPT, preset
from llmtrain.core.train import TrainConfig, Trainer

TOKENS = torch.randint(0, 50, (23,), generator=torch.Generator().manual_seed(1)).repeat(200)


def test_cuda_policy_is_bf16_tf32_fused_compiled_and_pinned():
    p = device.policy_for("cuda", bf16_supported=True)
    assert p.autocast_dtype == torch.bfloat16 and not p.grad_scaler
    assert p.tf32 and p.fused_adamw and p.compile and p.pin_memory and p.non_blocking


def test_cuda_without_bf16_uses_float16_with_a_grad_scaler():
    p = device.policy_for("cuda", bf16_supported=False)
    assert p.autocast_dtype == torch.float16 and p.grad_scaler


@pytest.mark.parametrize("kind", ["cpu", "mps"])
def test_cpu_and_mps_stay_on_the_exact_float32_paths(kind):
    p = device.policy_for(kind)
    assert p.autocast_dtype is None and not p.grad_scaler
    assert not (p.tf32 or p.fused_adamw or p.compile or p.pin_memory or p.non_blocking)


def test_compile_can_be_forced_either_way():
    assert device.policy_for("cpu", compile=True).compile
    assert not device.policy_for("cuda", compile=False).compile


@pytest.mark.parametrize("bad", [dict(device_type="tpu"), dict(device_type="cpu", compile="yes")])
def test_bad_policy_requests_say_what_to_change(bad):
    with pytest.raises(ValueError, match="must be"):
        device.policy_for(**bad)


def test_policy_of_this_cpu_matches_the_pure_policy():
    assert device.policy(torch.device("cpu")) == device.policy_for("cpu")
    assert device.autocast_dtype(torch.device("cpu")) is None


def test_tf32_is_left_alone_off_cuda():
    before = torch.backends.cuda.matmul.fp32_precision
    assert device.enable_tf32(torch.device("cpu")) is False
    assert torch.backends.cuda.matmul.fp32_precision == before


def test_to_device_on_the_cpu_returns_the_same_tensors():
    x, y = torch.ones(2, 3), torch.zeros(2, dtype=torch.long)
    moved = device.to_device({"pair": (x, y), "n": 3}, torch.device("cpu"))
    assert moved["pair"][0] is x and moved["pair"][1] is y and moved["n"] == 3


def test_for_device_picks_the_gpu_sizes_only_on_cuda():
    cpu, gpu = dict(preset="tiny", batch=8), dict(preset="gpt2", batch=16)
    sizes, note = device.for_device(torch.device("cpu"), cpu, gpu)
    assert sizes == cpu and "CPU" in note and "preset='tiny'" in note
    sizes, note = device.for_device(torch.device("cuda"), cpu, gpu)  # a pretend GPU
    assert sizes == gpu and "GPU sizes" in note and "preset='gpt2'" in note
    assert device.for_device(torch.device("mps"), cpu, gpu)[0] == cpu
    with pytest.raises(TypeError, match="dicts"):
        device.for_device(torch.device("cpu"), "tiny", gpu)


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA L4", 121e12), ("NVIDIA L40S", 362e12),
    ("Tesla T4", 65e12), ("NVIDIA GeForce RTX 4090", 165e12)])
def test_gpu_specs_are_found_by_the_names_cuda_reports(name, expected):
    assert device.gpu_spec(name).peak_flops == expected


def test_unknown_gpus_have_no_spec_and_names_must_exist():
    assert device.gpu_spec("NVIDIA A10G") is None and device.gpu_spec("Some NPU") is None
    assert device.gpu_by_name("NVIDIA H200 SXM").memory_gb == 141
    with pytest.raises(ValueError, match="choose one of"):
        device.gpu_by_name("H100")
    with pytest.raises(TypeError):
        device.gpu_spec(None)


def test_distributed_env_reads_what_torchrun_sets(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert device.distributed_env() == (0, 0, 1)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert device.distributed_env() == (3, 1, 4)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="must be in"):
        device.distributed_env()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="whole numbers"):
        device.distributed_env()


def test_without_torchrun_there_is_one_process_and_cleanup_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert device.init_distributed(torch.device("cpu")) == (0, 1, torch.device("cpu"))
    device.cleanup_distributed()
    assert device.is_main_process()


def test_cleanup_releases_every_user_of_the_group_before_ending_it(tmp_path):
    import torch.distributed as dist

    class User:
        released_while_group_alive = None

        def release(self):
            User.released_while_group_alive = dist.is_initialized()

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    user = User()
    device.register_group_user(user)
    device.cleanup_distributed()
    assert User.released_while_group_alive is True and not dist.is_initialized()
    assert len(device._group_users) == 0
    device.cleanup_distributed()  # a second call is a no-op


def test_describe_on_the_cpu_names_threads_and_float32():
    assert device.describe(torch.device("cpu")).endswith("threads), float32")


def test_trainer_on_the_cpu_uses_the_plain_paths():
    trainer = Trainer(GPT(preset("nano", vocab_size=50, block_size=16)), LMBatches(TOKENS, 16, 4),
                      TrainConfig(max_steps=2, device="cpu", progress=False))
    assert trainer.train_model is trainer.model and trainer.scaler is None
    assert not trainer.optimizer.defaults.get("fused") and trainer.is_main


def test_compile_true_wraps_the_model_on_any_device():
    trainer = Trainer(GPT(preset("nano", vocab_size=50, block_size=16)), LMBatches(TOKENS, 16, 4),
                      TrainConfig(max_steps=2, device="cpu", progress=False, compile=True))
    assert isinstance(trainer.train_model, torch._dynamo.eval_frame.OptimizedModule)
    assert trainer.train_model._orig_mod is trainer.model
    with pytest.raises(ValueError, match="compile must be"):
        TrainConfig(compile="auto")


# --- on a real GPU ----------------------------------------------------------------
def _cuda_trainer(**overrides):
    torch.manual_seed(0)
    model = GPT(preset("nano", vocab_size=50, block_size=16))
    cfg = dict(max_steps=30, lr=3e-3, device="cuda", progress=False, log_every=1)
    cfg.update(overrides)
    return Trainer(model, LMBatches(TOKENS, 16, 8, seed=0), TrainConfig(**cfg))


@pytest.mark.gpu
def test_on_cuda_the_trainer_uses_bf16_tf32_fused_adamw_and_compile():
    trainer = _cuda_trainer()
    bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    assert trainer.policy.autocast_dtype == (torch.bfloat16 if bf16 else torch.float16)
    assert trainer.optimizer.defaults["fused"] is True
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    compiled = isinstance(trainer.train_model, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled == device._triton_available()  # compile needs Triton's GPU code generator
    history = trainer.fit()
    assert history.loss[-1] < history.loss[0] - 0.5
    assert next(trainer.model.parameters()).dtype == torch.float32  # master weights stay fp32


@pytest.mark.gpu
def test_float16_with_grad_scaler_trains_where_bf16_is_missing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    trainer = _cuda_trainer(compile=False)
    assert trainer.scaler is not None and trainer.policy.autocast_dtype == torch.float16
    history = trainer.fit()
    assert history.loss[-1] < history.loss[0] - 0.5


@pytest.mark.gpu
def test_batches_reach_the_gpu_through_pinned_memory():
    x = torch.arange(6).view(2, 3)
    moved = device.to_device((x, {"y": x + 1}), torch.device("cuda"))
    assert moved[0].is_cuda and torch.equal(moved[0].cpu(), x)
    assert torch.equal(moved[1]["y"].cpu(), x + 1)


@pytest.mark.gpu
def test_attention_runs_on_the_flash_kernel_in_bf16():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("flash attention needs an Ampere or newer GPU")
    model = GPT(preset("tiny", vocab_size=64, block_size=128)).cuda()
    x = torch.randint(0, 64, (4, 128), device="cuda")
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.autocast("cuda", torch.bfloat16):
        model(x).float().logsumexp(-1).mean().backward()  # raises if flash cannot run
    assert model.wte.weight.grad is not None
