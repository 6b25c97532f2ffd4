"""Every chapter: well-formed, parameterised, and runnable headless with quick=True.

The full default run of each committed notebook is done by nbval (see
pyproject.toml: `pytest` collects chapters/*.ipynb with --nbval-lax).
"""

from __future__ import annotations

import json
import re

import nbformat
import papermill
import pytest

from llmtrain import cli

from .conftest import CHAPTERS, ROOT

NOTEBOOKS = sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))
IDS = [nb.stem for nb in NOTEBOOKS]
README = (ROOT / "README.md").read_text()
SYLLABUS_IDS = {f"C{i}" for i in range(1, 27)}


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapter_is_well_formed(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters' for papermill"
    params = papermill.inspect_notebook(str(path))
    assert {"quick", "device", "seed"} <= set(params), "quick, device and seed are required"
    counts = [c.execution_count for c in code if c.source.strip()]
    assert None not in counts, "commit the notebook executed top to bottom"
    assert counts == sorted(counts) and counts[0] == 1, "execution counts must run in order"
    outputs = json.dumps([c.get("outputs", []) for c in code])
    assert not re.search(r"/(root|home|tmp|work|Users)/[^\s\"']+", outputs), "machine path"
    assert "Traceback" not in outputs and '"output_type": "error"' not in outputs
    intro = nb.cells[0].source
    assert intro.startswith("# "), "the first cell is the chapter's title"
    assert set(re.findall(r"\bC\d+\b", intro)) <= SYLLABUS_IDS
    assert re.search(r"\bC\d+\b", intro) or path.stem.startswith("03"), "name the claims shown"
    sources = "\n".join(c.source for c in code)
    assert re.search(r"Playground\(|_playground\(", sources), "every chapter has a playground"
    assert "### BEGIN SOLUTION" in sources, "every chapter has exercises with solutions"
    assert path.name in README, "list the chapter in README.md"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapter_runs_quick_with_papermill(path, tmp_path):
    cli.run_chapter(path, tmp_path, {"quick": True}, timeout=300)
    out = tmp_path / path.name
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "quick = True" in injected[0].source


def test_unknown_papermill_parameter_is_a_clear_error():
    with pytest.raises(SystemExit, match="has no parameter"):
        cli.check_parameters(NOTEBOOKS[0], {"quikc": True})


def test_cli_finds_chapters_by_number():
    assert cli.find_chapter("1") == cli.find_chapter("01") == NOTEBOOKS[0]
    with pytest.raises(SystemExit, match="no chapter"):
        cli.find_chapter("99")
