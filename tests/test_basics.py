"""device, losses, data, chapter helpers, generation."""

from __future__ import annotations

import math

import pytest
import torch

from llmtrain.core import device, losses
from llmtrain.core.batches import LMBatches, bits_per_byte, evaluate_loss, heldout_windows
from llmtrain.course import chapter


def test_pick_device_auto_and_errors():
    assert device.pick_device("auto").type in ("cpu", "cuda", "mps")
    assert device.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        device.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            device.pick_device("cuda")


def test_precision_policy_on_cpu_is_fp32():
    cpu = torch.device("cpu")
    assert device.autocast_dtype(cpu) is None and not device.needs_grad_scaler(cpu)
    with device.autocast(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_precision_policy_on_cuda():
    cuda = torch.device("cuda")
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert device.autocast_dtype(cuda) == expected


def test_seeding_repeats_random_numbers():
    device.seed_everything(3)
    a = torch.rand(3)
    device.seed_everything(3)
    assert torch.equal(a, torch.rand(3))
    with pytest.raises(ValueError):
        device.seed_everything(-1)


def test_mat_example_from_the_syllabus():
    assert losses.surprise(0.30) == pytest.approx(1.20, abs=0.005)
    assert losses.surprise(0.5, "bits") == pytest.approx(1.0)
    assert losses.perplexity(math.log(7)) == pytest.approx(7)
    assert losses.uniform_loss(2048) == pytest.approx(math.log(2048))
    with pytest.raises(ValueError):
        losses.surprise(0.0)


def test_next_token_loss_matches_a_manual_computation():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, 3], [4, 0, -100]])
    manual = [-torch.log_softmax(logits[b, t], -1)[targets[b, t]]
              for b in range(2) for t in range(3) if targets[b, t] != -100]
    assert losses.next_token_loss(logits, targets) == pytest.approx(
        float(torch.stack(manual).mean()), abs=1e-6)


def test_batches_are_a_pure_function_of_the_index():
    tokens = torch.arange(1000)
    b = LMBatches(tokens, block_size=8, batch_size=4, seed=1)
    x1, y1 = b(7)
    x2, _ = b(7)
    assert torch.equal(x1, x2) and not torch.equal(x1, b(8)[0])
    assert torch.equal(y1[:, :-1], x1[:, 1:])  # targets are inputs shifted by one
    with pytest.raises(ValueError, match="too few"):
        LMBatches(torch.arange(5), 8, 2)


def test_heldout_windows_cover_the_stream_in_order():
    w = heldout_windows(torch.arange(20), 4)
    assert w.shape == (4, 5) and w[1, 0] == 4


def test_evaluate_loss_of_a_uniform_model_is_ln_v():
    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.config = type("C", (), {"block_size": 8})

        def forward(self, idx):
            return torch.zeros(*idx.shape, 11) + self.w

    assert evaluate_loss(Uniform(), torch.arange(100) % 11) == pytest.approx(math.log(11))
    assert bits_per_byte(math.log(2), 10, 10) == pytest.approx(1.0)


def test_parameter_checks_name_the_parameter():
    chapter.check_int("steps", 5, 1, 10)
    with pytest.raises(ValueError, match="steps=0 must be a whole number from 1 to 10"):
        chapter.check_int("steps", 0, 1, 10)
    with pytest.raises(ValueError, match="quick"):
        chapter.check_bool("quick", "yes")
    with pytest.raises(ValueError, match="lr"):
        chapter.check_float("lr", float("nan"), 0, 1)
    with pytest.raises(ValueError, match="choose one of"):
        chapter.check_choice("device", "gpu", ["auto", "cpu"])


def test_claims_pass_quietly_and_fail_with_advice(capsys):
    chapter.claim("C2", True, "loss is 1.20 nats", "p=0.30")
    assert "✔ C2: loss is 1.20 nats (p=0.30)" in capsys.readouterr().out
    with pytest.raises(chapter.ClaimFailed, match="C3 was not shown.*rerun with the defaults"):
        chapter.claim("C3", False, "the model beats gzip")
