"""benchmarks/gpu_check.sh: valid bash, and on a machine without a CUDA GPU a clear skip."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


def _env(**extra) -> dict:
    """The environment for the script: no GPU visible, none of its settings inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # torch.cuda.is_available() is False even on a GPU machine
    env.update(extra)
    return env


def test_the_script_is_valid_bash_and_executable():
    done = subprocess.run([BASH, "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert os.access(SCRIPT, os.X_OK)
    assert "bash benchmarks/gpu_check.sh" in SCRIPT.read_text()


def test_an_unknown_device_setting_is_a_usage_error(tmp_path):
    done = subprocess.run([BASH, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True,
                          env=_env(GPU_CHECK_DEVICE="tpu"), timeout=60)
    assert done.returncode == 2
    assert "GPU_CHECK_DEVICE" in done.stderr


@pytest.mark.slow
def test_without_a_gpu_it_says_so_lists_the_skipped_steps_and_exits_0(tmp_path):
    # from another working directory: the script finds the repository itself
    done = subprocess.run([BASH, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True,
                          env=_env(), timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "No CUDA GPU" in out
    assert "torch:" in out and "CUDA:" in out
    for step in ("pytest -m gpu", "bench_train", "llmtrain run"):
        assert step in out
    summary = out[out.index("gpu_check summary"):]
    rows = [line.split() for line in summary.splitlines()]
    for step in ("gpu tests", "bench_train", "chapter"):
        row = next(r for r in rows if " ".join(r).startswith(step))
        assert "skipped" in row
    assert "FAILED" not in summary.replace("0 FAILED", "")
    assert not list(tmp_path.iterdir())  # nothing written where it was started
