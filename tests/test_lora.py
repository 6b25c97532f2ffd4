"""LoRA: the layer against hand-computed values, merging, applying by name, saving, QLoRA."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from llmtrain.compress import lora, quant
from llmtrain.compress.lora import LoRALinear
from llmtrain.core.batches import LMBatches
from llmtrain.core.model import GPT, preset
from llmtrain.core.train import TrainConfig, Trainer


def test_lora_linear_shapes_init_and_frozen_base():
    base = nn.Linear(12, 6)
    layer = LoRALinear(base, r=2, alpha=8)
    assert layer.lora_A.shape == (2, 12) and layer.lora_B.shape == (6, 2)
    assert torch.count_nonzero(layer.lora_B) == 0 and torch.count_nonzero(layer.lora_A) > 0
    assert layer.lora_A.abs().max() <= 1 / 12 ** 0.5
    assert layer.scaling == 4.0
    assert not base.weight.requires_grad and not base.bias.requires_grad
    x = torch.randn(3, 5, 12)
    assert torch.equal(layer(x), base(x))  # B = 0: the adapted layer starts as the base


def test_lora_forward_equals_w_plus_scaled_ba():
    base = nn.Linear(4, 3, bias=False)
    layer = LoRALinear(base, r=1, alpha=2)
    with torch.no_grad():
        layer.lora_A.copy_(torch.tensor([[1.0, 0.0, -1.0, 2.0]]))
        layer.lora_B.copy_(torch.tensor([[1.0], [0.5], [0.0]]))
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    # A x = 1 - 3 + 8 = 6; B (A x) = [6, 3, 0]; scaled by alpha / r = 2
    assert torch.allclose(layer(x) - base(x), torch.tensor([[12.0, 6.0, 0.0]]))
    assert torch.allclose(layer.delta_weight(), 2 * torch.tensor([[1.0], [0.5], [0.0]])
                          @ torch.tensor([[1.0, 0.0, -1.0, 2.0]]))


def test_only_the_adapters_get_gradients():
    layer = LoRALinear(nn.Linear(8, 8), r=2, alpha=2)
    layer(torch.randn(4, 8)).sum().backward()
    assert layer.lora_A.grad is not None and layer.lora_B.grad is not None
    assert layer.base.weight.grad is None
    assert torch.count_nonzero(layer.lora_A.grad) == 0  # B = 0 at the start
    assert torch.count_nonzero(layer.lora_B.grad) > 0


def test_merge_and_unmerge():
    base = nn.Linear(16, 8)
    original = base.weight.detach().clone()
    layer = LoRALinear(base, r=4, alpha=4)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(2, 16)
    adapted = layer(x)
    layer.merge()
    assert layer.merged
    assert torch.allclose(layer(x), adapted, atol=1e-5)
    assert torch.allclose(base(x), adapted, atol=1e-5)  # the base layer alone now does it
    layer.unmerge()
    assert torch.allclose(base.weight, original, atol=1e-6)
    assert torch.allclose(layer(x), adapted, atol=1e-5)


def test_bad_arguments_say_what_to_change():
    with pytest.raises(ValueError, match="rank r must be"):
        LoRALinear(nn.Linear(4, 4), r=0, alpha=1)
    with pytest.raises(ValueError, match="larger than the layer allows"):
        LoRALinear(nn.Linear(4, 4), r=5, alpha=1)
    with pytest.raises(ValueError, match="alpha"):
        LoRALinear(nn.Linear(4, 4), r=1, alpha=0)
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(4, 4, 1), r=1, alpha=1)


@pytest.fixture
def gpt():
    torch.manual_seed(0)
    return GPT(preset("nano", vocab_size=64, block_size=16)).eval()


def test_apply_lora_by_name_and_report(gpt):
    n_base = gpt.num_params()
    report = lora.apply_lora(gpt, ["attn.qkv", "attn.proj"], r=2, alpha=4)
    assert report.targets == ("blocks.0.attn.qkv", "blocks.0.attn.proj",
                              "blocks.1.attn.qkv", "blocks.1.attn.proj")
    n_embd = 64
    expected = 2 * (2 * (n_embd + 3 * n_embd) + 2 * (n_embd + n_embd))
    assert report.trainable == expected == lora.lora_parameter_count(
        [(3 * n_embd, n_embd), (n_embd, n_embd)] * 2, r=2)
    assert report.total == n_base + expected
    assert report.fraction == pytest.approx(expected / report.total)
    trainable = {n for n, p in gpt.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert "4 layers adapted" in str(report)


def test_apply_lora_all_skips_the_tied_output_layer(gpt):
    report = lora.apply_lora(gpt, "all", r=1, alpha=1)
    assert len(report.targets) == 8 and "lm_head" not in report.targets


def test_apply_lora_rejects_unknown_names_and_a_second_application(gpt):
    with pytest.raises(ValueError, match="no adaptable layer matches"):
        lora.apply_lora(gpt, ["q_proj"], r=1, alpha=1)
    lora.apply_lora(gpt, ["mlp.fc"], r=1, alpha=1)
    with pytest.raises(ValueError, match="already has LoRA"):
        lora.apply_lora(gpt, ["mlp.fc"], r=1, alpha=1)


def _train(model, steps=15, lr=3e-2):
    tokens = (torch.arange(2000) % 8) * 3  # a repeating pattern of 8 tokens
    batches = LMBatches(tokens, block_size=16, batch_size=8)
    config = TrainConfig(max_steps=steps, lr=lr, weight_decay=0.0, progress=False, device="cpu")
    trainer = Trainer(model, batches, config)
    history = trainer.fit()
    return history, trainer


def test_lora_training_changes_only_the_adapters_and_lowers_the_loss(gpt, one_thread):
    frozen = {n: p.detach().clone() for n, p in gpt.named_parameters()}
    lora.apply_lora(gpt, "all", r=4, alpha=8)
    history, trainer = _train(gpt)
    assert history.loss[-1] < history.loss[0] - 0.5
    for n, p in gpt.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, frozen[n.replace(".base", "")]), f"{n} changed"
    n_lora = sum(p.numel() for n, p in gpt.named_parameters() if "lora_" in n)
    assert lora.optimizer_state_bytes(trainer.optimizer) == 2 * 4 * n_lora + 4 * len(
        trainer.optimizer.state)  # exp_avg, exp_avg_sq (float32) and a step count each


def test_merged_model_gives_the_same_outputs(gpt, one_thread):
    lora.apply_lora(gpt, "all", r=4, alpha=8)
    _train(gpt, steps=5)
    gpt.eval()
    x = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        adapted = gpt(x)
        lora.merge_lora(gpt)
        merged = gpt(x)
    assert not lora.lora_layers(gpt)
    assert isinstance(gpt.blocks[0].attn.qkv, nn.Linear)
    assert torch.allclose(adapted, merged, atol=1e-5)


def test_adapters_switch_off(gpt):
    x = torch.randint(0, 64, (1, 16))
    with torch.no_grad():
        before = gpt(x)
    lora.apply_lora(gpt, "all", r=2, alpha=2)
    for layer in lora.lora_layers(gpt).values():
        torch.nn.init.normal_(layer.lora_B)
    lora.set_adapters_enabled(gpt, False)
    with torch.no_grad():
        assert torch.allclose(gpt(x), before, atol=1e-6)
        lora.set_adapters_enabled(gpt, True)
        assert not torch.allclose(gpt(x), before, atol=1e-3)


def test_save_and_load_adapters_on_their_own(gpt, tmp_path):
    fresh = GPT(gpt.config).eval()
    fresh.load_state_dict(gpt.state_dict())
    lora.apply_lora(gpt, ["attn.qkv", "mlp.fc"], r=3, alpha=6)
    for layer in lora.lora_layers(gpt).values():
        torch.nn.init.normal_(layer.lora_B)
    folder = lora.save_adapters(gpt, tmp_path / "adapters")
    saved = (folder / lora.ADAPTER_FILE).stat().st_size
    assert saved < 4 * sum(p.numel() for p in fresh.parameters()) / 5
    report = lora.load_adapters(fresh, folder)
    assert report.targets == tuple(lora.lora_layers(gpt))
    x = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        assert torch.equal(fresh(x), gpt(x))
    with pytest.raises(FileNotFoundError, match="no saved adapters"):
        lora.load_adapters(GPT(gpt.config), tmp_path / "missing")


def test_loading_adapters_into_another_shape_fails_clearly(gpt, tmp_path):
    lora.apply_lora(gpt, ["mlp.fc"], r=2, alpha=2)
    lora.save_adapters(gpt, tmp_path)
    other = GPT(preset("nano", vocab_size=64, block_size=16, n_embd=32))
    with pytest.raises(ValueError, match="do not fit"):
        lora.load_adapters(other, tmp_path)


def test_qlora_trains_adapters_on_a_quantized_frozen_base(gpt, one_thread):
    qmodel = quant.quantize_model(gpt, scheme="nf4", bits=4, granularity="group",
                                  group_size=32, double_quant=True)
    report = lora.apply_lora(qmodel, "all", r=4, alpha=8)
    assert all(isinstance(layer.base, quant.QuantLinear)
               for layer in lora.lora_layers(qmodel).values())
    codes = qmodel.blocks[0].attn.qkv.base.codes.clone()
    history, _ = _train(qmodel)
    assert history.loss[-1] < history.loss[0] - 0.5
    assert torch.equal(qmodel.blocks[0].attn.qkv.base.codes, codes)  # the base stays put
    assert report.trainable == sum(p.numel() for p in qmodel.parameters() if p.requires_grad)
    assert report.total == gpt.num_params() + report.trainable  # quantized weights count too
    with pytest.raises(TypeError, match="quantized base"):
        qmodel.blocks[0].attn.qkv.merge()
    x = torch.randint(0, 64, (2, 16))
    qmodel.eval()
    with torch.no_grad():
        adapted = qmodel(x)
        lora.merge_lora(lora.dequantize_base(qmodel))
        assert torch.allclose(qmodel(x), adapted, atol=1e-4)


def test_count_parameters_counts_tied_weights_once(gpt):
    trainable, total = lora.count_parameters(gpt)
    assert trainable == total == gpt.num_params()
