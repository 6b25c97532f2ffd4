"""Shared test settings: a fixed seed for every test, and the repository paths."""

from __future__ import annotations

import os
from pathlib import Path

# This test process trains models itself, so it sets the OpenMP wait policy before torch
# loads; kernels get it from etc/ipython/ipython_kernel_config.py (lib/kernel-config), which
# tests/test_kernel_threads.py checks in a kernel started without this variable.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"


def require(why: str | None, in_ci: str) -> None:
    """Skip the test when ``why`` (what is missing) is set, but fail it under CI=true,
    where it must run: ``in_ci`` says what CI must do."""
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{in_ci}, but {why}")
        pytest.skip(why)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run only where CUDA is available."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Small models on a shared 2-core machine: one thread avoids oversubscription stalls."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tok():
    """The course tokenizer."""
    from llmtrain.course.shared_data import course_tokenizer

    return course_tokenizer()


@pytest.fixture(scope="module")
def world():
    """A small course world: 20 people, 4 of them described nowhere (a test module may
    define its own ``world`` instead)."""
    from llmtrain.world.fiction import World

    return World.generate(seed=3, n_people=20, n_unseen=4)


@pytest.fixture
def nano(tok):
    """``nano(seed=0, block_size=48)``: a fresh nano GPT with the course vocabulary, in eval
    mode, its weights drawn after ``torch.manual_seed(seed)``."""
    import torch

    from llmtrain.core.model import GPT, preset

    def make(seed: int = 0, block_size: int = 48):
        torch.manual_seed(seed)
        return GPT(preset("nano", vocab_size=tok.vocab_size, block_size=block_size)).eval()

    return make
