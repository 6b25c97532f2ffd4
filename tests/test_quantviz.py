"""Chapter 10's measurements, plots and playground, on a tiny random model."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from llmtrain.compress.quant import QuantConfig
from llmtrain.core.model import GPT, preset
from llmtrain.viz import quantviz


@pytest.fixture(scope="module")
def setup_model():
    torch.manual_seed(0)
    model = GPT(preset("nano", vocab_size=64, block_size=16)).eval()
    tokens = torch.randint(0, 64, (600,))
    return model, tokens


def test_evaluate_schemes_measures_bytes_and_loss(setup_model, one_thread):
    model, tokens = setup_model
    configs = [QuantConfig("absmax", 8, "channel"), QuantConfig("nf4", 4, "group", 32)]
    rows = quantviz.evaluate_schemes(model, configs, tokens, max_windows=8)
    assert [r.label for r in rows] == ["fp32", "int8 absmax channel", "NF4 g32"]
    assert rows[0].bits_per_weight == 32 and rows[0].layer_bytes == 4 * 8 * 64 * 64 * 3
    assert rows[1].layer_bytes < rows[0].layer_bytes / 3.5  # 8 bits + a 32-bit scale per row of 64
    assert rows[2].bits_per_weight == pytest.approx(4 + 32 / 32)
    assert rows[2].model_bytes < rows[1].model_bytes < rows[0].model_bytes
    assert abs(rows[1].loss - rows[0].loss) < 0.01
    assert rows[2].perplexity == pytest.approx(torch.tensor(rows[2].loss).exp().item())


def test_group_size_sweep_rows():
    w = torch.randn(64, 256)
    sweep = quantviz.group_size_sweep(w, [("absmax", 4), ("nf4", 4)], [16, 256])
    assert set(sweep) == {"int4 absmax", "NF4"}
    (g1, m1, b1), (g2, m2, b2) = sweep["int4 absmax"]
    assert (g1, g2) == (16, 256) and m1 < m2 and b1 > b2
    fig = quantviz.group_size_plot(sweep)
    assert fig.axes[0].get_xlabel().startswith("group size")
    plt.close(fig)


def test_plots_have_titles_and_labels(setup_model):
    w = torch.randn(32, 32)
    fig = quantviz.error_histograms(w, [QuantConfig("absmax", 4, "tensor")])
    assert fig.axes[0].get_title() and "error" in fig.axes[0].get_xlabel()
    plt.close(fig)
    fig = quantviz.code_levels_plot()
    assert len(fig.axes[0].lines) == 2
    plt.close(fig)


def test_playground_reruns_and_reports_errors(setup_model, one_thread):
    model, tokens = setup_model
    panel = quantviz.quant_playground(model, tokens, "blocks.0.mlp.fc", max_windows=4,
                                      scheme="absmax", bits=8, group="channel")
    assert panel.calls == 1 and "int8 absmax channel" in panel.last_text
    panel.controls["bits"].value = 2
    assert "int2 absmax channel" in panel.last_text
    panel.controls["group"].value = 32
    assert "int2 absmax g32" in panel.last_text and "bits per weight" in panel.last_text
    panel.controls["scheme"].value = "nf4"
    assert panel.error == "NF4 is a 4-bit code: set bits to 4"
    panel.controls["bits"].value = 4
    assert panel.error is None and "NF4 g32" in panel.last_text
    with pytest.raises(ValueError, match="not a layer"):
        quantviz.quant_playground(model, tokens, "blocks.9.fc")
