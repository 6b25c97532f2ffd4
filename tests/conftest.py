"""Shared test settings: small thread count, fixed seeds, paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
    yield


def pytest_configure(config):
    os.environ.setdefault("LLMTRAIN_PROGRESS", "0")
