"""The repository's promises: README commands == CI, Binder pins == requirements, small assets."""

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


# In requirements.txt but not on Binder, each named in binder/requirements.txt's comments.
NOT_ON_BINDER = {"playwright"}


def test_binder_pins_match_requirements():
    main, binder = _pins("requirements.txt"), _pins("binder/requirements.txt")
    text = (ROOT / "binder/requirements.txt").read_text()
    assert {k: v for k, v in main.items() if k not in NOT_ON_BINDER} == binder
    for name in NOT_ON_BINDER:
        assert name in text.split("--extra-index-url")[0], f"say why {name} is not on Binder"
    assert main["torch"] == "2.13.0"
    assert (ROOT / "binder/runtime.txt").read_text().strip() == "python-3.11"


def test_binder_installs_cpu_torch_and_the_course_library():
    lines = [line.split("#")[0].strip() for line in
             (ROOT / "binder/requirements.txt").read_text().splitlines()]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "torch==2.13.0+cpu" in lines
    assert "-e ." in lines                         # repo2docker runs pip from the repo root
    assert "-e ." in (ROOT / "requirements.txt").read_text()


def test_the_binder_badge_opens_the_chapters_in_jupyterlab():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"\(https://mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)/([\w.-]+)"
                  r"\?urlpath=lab/tree/([^)\s]+)\)", readme)
    assert m, "README needs a Binder badge linking to mybinder.org/v2/gh/OWNER/REPO/BRANCH"
    assert (ROOT / m.group(4)).exists(), f"the badge opens {m.group(4)!r}, which is not in the repo"
    assert "https://mybinder.org/badge_logo.svg" in readme


def test_ci_runs_exactly_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    for command in ("python3 -m venv .venv", ". .venv/bin/activate",
                    "pip install -r requirements.txt", "apt-get install -y chromium", "pytest"):
        assert command in readme, f"README lacks {command!r}"
        assert command in ci, f".ci/run lacks {command!r}"
    # the browser test may skip on a student's machine, never in CI
    assert 'export CI="${CI:-true}"' in ci


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


def test_readme_screenshots_exist_and_stay_small():
    readme = (ROOT / "README.md").read_text()
    shots = re.findall(r"!\[[^\]]*\]\((assets/figures/[^)]+\.png)\)", readme)
    assert len(shots) >= 2, "README shows screenshots of the playgrounds"
    for shot in shots:
        size = (ROOT / shot).stat().st_size
        assert size < 150_000, f"{shot} is {size / 1e3:.0f} KB: keep screenshots small"
