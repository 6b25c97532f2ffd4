"""The repository's promises: README commands == CI, Binder pins == requirements."""

from __future__ import annotations

import re

from .conftest import ROOT


def _pins(path):
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#")[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2).split("+")[0]
    return pins


def test_binder_pins_match_requirements():
    main, binder = _pins("requirements.txt"), _pins("binder/requirements.txt")
    assert main == binder
    assert main["torch"] == "2.13.0"
    assert (ROOT / "binder/runtime.txt").read_text().strip() == "python-3.11"


def test_ci_runs_exactly_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    for command in ("python3 -m venv .venv", ". .venv/bin/activate",
                    "pip install -r requirements.txt", "pytest"):
        assert command in readme, f"README lacks {command!r}"
        assert command in ci, f".ci/run lacks {command!r}"


def test_assets_stay_small():
    # A 4 x 128 checkpoint is 4.3 MB in float32; the zoo holds one or two per chapter.
    # Binder and git handle 45 MB well; beyond that, store checkpoints that are only
    # evaluated (never trained further) in float16, or as LoRA deltas.
    total = sum(p.stat().st_size for p in (ROOT / "assets").rglob("*") if p.is_file())
    assert total < 45e6, f"assets/ is {total / 1e6:.1f} MB; keep it under 45 MB"


def test_code_and_notebooks_pass_ruff():
    import subprocess
    import sys

    paths = ["lib", "tests", "benchmarks", "chapters"]
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", *paths],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
