"""Shared test settings: a fixed seed for every test, and the repository paths."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"


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
    from llmtrain.zoo import course_tokenizer

    return course_tokenizer()
