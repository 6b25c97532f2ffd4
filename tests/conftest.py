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

