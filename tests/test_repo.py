"""The repository's promises: README commands == CI, Binder pins == requirements, small assets."""

from __future__ import annotations

import re

import pytest

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
NOT_ON_BINDER = {"playwright", "jupyter-book"}


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
                    "pip install -r requirements.txt", "apt-get install -y chromium nodejs",
                    "pytest"):
        assert command in readme, f"README lacks {command!r}"
        assert command in ci, f".ci/run lacks {command!r}"
    # the browser and website tests may skip on a student's machine, never in CI
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


# ---- licenses, citation, contributing ------------------------------------------------------

def _project_version():
    m = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert m, "pyproject.toml names the project's version"
    return m.group(1)


def _readme_sections():
    """The README's top-level (`## `) section titles, in order."""
    return re.findall(r"(?m)^## (.+?)\s*$", (ROOT / "README.md").read_text())


def test_code_is_mit_and_the_content_cc_by():
    mit = (ROOT / "LICENSE").read_text()
    assert mit.startswith("MIT License")
    assert "Copyright (c) 2026 The How LLMs Are Trained authors" in mit
    for phrase in ("Permission is hereby granted, free of charge, to any person",
                   "The above copyright notice and this permission notice shall be included",
                   'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND'):
        assert phrase in mit, f"LICENSE lacks the MIT text {phrase!r}"
    content = (ROOT / "LICENSE-CONTENT.md").read_text()
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in content
    for covered in ("chapters/", "assets/figures/", "README.md"):
        assert covered in content, f"LICENSE-CONTENT.md should say whether it covers {covered}"


def test_citation_cff_is_valid_and_names_this_version():
    import yaml  # PyYAML: installed with papermill (requirements.txt)

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "abstract"):
        assert isinstance(cff.get(key), str) and cff[key].strip(), f"CITATION.cff needs {key}"
    assert cff["type"] == "software"
    assert cff["authors"] and all(a.get("name") or a.get("family-names")
                                  for a in cff["authors"])
    assert cff["version"] == _project_version(), "CITATION.cff and pyproject.toml disagree"
    assert cff["license"] == "MIT"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(cff["date-released"]))
    assert isinstance(cff["keywords"], list) and cff["keywords"]
    badge = re.search(r"mybinder\.org/v2/gh/([\w.-]+/[\w.-]+)/", (ROOT / "README.md").read_text())
    assert cff["repository-code"] == f"https://github.com/{badge.group(1)}", (
        "CITATION.cff's repository-code and the README's Binder badge name different repos")


def test_readme_ends_with_troubleshooting_citing_and_license():
    sections = _readme_sections()
    for title in ("Troubleshooting", "Citing", "License"):
        assert title in sections, f"README.md needs a section '## {title}'"
    assert sections[-1] == "License", "the License section comes last"
    assert sections.index("Troubleshooting") < sections.index("License")
    readme = (ROOT / "README.md").read_text()
    citing = readme.split("## Citing", 1)[1].split("\n## ", 1)[0]
    assert "CITATION.cff" in citing and "@misc{" in citing
    assert f"Version {_project_version()}" in citing, "the BibTeX entry names another version"
    license_ = readme.split("## License", 1)[1]
    assert "(LICENSE)" in license_ and "(LICENSE-CONTENT.md)" in license_


def _subcommands(capsys, *argv):
    """The subcommands the CLI's parser offers after ``argv`` (from its --help), or set()."""
    from llmtrain.course import cli

    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    usage = capsys.readouterr().out.split("\n\n", 1)[0]   # the usage lines
    m = re.search(r"\{([\w,-]+)\}", usage)
    return set(m.group(1).split(",")) if m else set()


def test_docs_name_only_real_commands(capsys):
    commands = _subcommands(capsys)
    assert {"run", "execute", "zoo", "coursework"} <= commands   # the parsing works
    said = re.compile(r"python -m llmtrain\s+([a-z][\w-]*)(?:\s+([a-z][\w-]*))?")
    for doc in ("CONTRIBUTING.md", "README.md"):
        assert (ROOT / doc).exists(), f"{doc} is missing"
        for first, second in said.findall((ROOT / doc).read_text()):
            assert first in commands, (
                f"{doc} names `python -m llmtrain {first}`, which the CLI does not have")
            below = _subcommands(capsys, first)
            if below:
                assert second in below, (
                    f"{doc} names `python -m llmtrain {first} {second}`: "
                    f"{first} has only {sorted(below)}")
