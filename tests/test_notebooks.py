"""Every chapter: well-formed, parameterised, graded exercises, and its student edition runs.

The full default run of each committed notebook is done by nbval (see
pyproject.toml: `pytest` collects chapters/*.ipynb with --nbval-lax). The quick
run is the *student edition* with quick=True, through the headless runner: it
exercises papermill, the parameters, the solution-free code, the "not solved yet"
checks, the recorded key numbers and the memory budget in one run per chapter
(instead of a third run of every chapter).
"""

from __future__ import annotations

import json
import re

import nbformat
import papermill
import pytest

from llmtrain.course import cli, coursework, runner

from .conftest import CHAPTERS, ROOT

NOTEBOOKS = sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))
IDS = [nb.stem for nb in NOTEBOOKS]
README = (ROOT / "README.md").read_text()
SYLLABUS_IDS = {f"C{i}" for i in range(1, 29)}
CLAIMS_PAGE = (CHAPTERS / "CLAIMS.md").read_text()
PEAK_MB = 1500          # the memory budget of a chapter (Binder gives about 2 GB)


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
    for cid in set(re.findall(r"\bC\d+\b", intro)):
        anchor = f"CLAIMS.md#{cid.lower()}"
        assert f"[{cid}]({anchor})" in intro, f"link {cid} to {anchor}"
        assert f'<a id="{cid.lower()}"></a>' in CLAIMS_PAGE, f"chapters/CLAIMS.md lacks {cid}"
    sources = "\n".join(c.source for c in code)
    assert re.search(r"Playground\(|_playground\(", sources), "every chapter has a playground"
    assert "application/vnd.jupyter.widget-view+json" in outputs, "its widgets, shown"
    assert "### BEGIN SOLUTION" in sources, "every chapter has exercises with solutions"
    assert path.name in README, "list the chapter in README.md"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_exercises_are_ready_for_nbgrader(path):
    nb = nbformat.read(path, as_version=4)
    assert coursework.nbgrader_problems(nb) == []


@pytest.fixture(scope="module")
def student_edition(tmp_path_factory):
    return coursework.write_student_edition(NOTEBOOKS, tmp_path_factory.mktemp("student"))


def _solution_lines(nb) -> set[str]:
    """The code lines only the solutions have: between the solution markers (not comments,
    not a stub's def line) and in no other cell (a loop header the chapter also shows
    elsewhere gives nothing away)."""
    lines, solutions = set(), set()
    for ex in coursework.find_exercises(nb):
        solutions.add(ex.solution)
        for region in coursework._regions(nb.cells[ex.solution].source):
            lines |= {x.strip() for x in region.split("\n")
                      if len(x.strip()) > 12 and not x.strip().startswith(("#", "def "))}
    elsewhere = {x.strip() for i, c in enumerate(nb.cells) if i not in solutions
                 for x in c.source.split("\n")}
    return lines - elsewhere


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_student_edition_runs_quick(path, student_edition, tmp_path):
    student = next(p for p in student_edition if p.name == path.name)
    run = runner.run_one(student, tmp_path, {"quick": True}, timeout=300)
    assert run.ok, f"the student edition of {path.stem} failed with quick=True: {run.error}"
    nb = nbformat.read(tmp_path / path.name, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "quick = True" in injected[0].source
    checks = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%check")]
    assert len(checks) >= 2
    for c in checks:
        text = "".join(o.get("text", "") for o in c.outputs)
        assert coursework.NOT_SOLVED in text, f"a check passed without an answer:\n{c.source}"
    shown = {x.strip() for c in nb.cells for x in c.source.split("\n")}
    leaked = _solution_lines(nbformat.read(path, as_version=4)) & shown
    assert not leaked, f"the student edition shows solution lines: {sorted(leaked)[:3]}"
    assert run.peak_mb is not None and run.peak_mb < PEAK_MB, (
        f"{path.stem} (quick) peaked at {run.peak_mb:.0f} MB")
    assert run.records, "record the key numbers: chapter.record(name, value, unit)"


def test_student_edition_command_writes_every_chapter(tmp_path, capsys):
    assert cli.main(["student-edition", str(tmp_path)]) == 0
    for path in NOTEBOOKS:
        nb = nbformat.read(tmp_path / path.name, as_version=4)
        assert coursework.BEGIN not in "\n".join(c.source for c in nb.cells)
    assert f"{len(NOTEBOOKS)} student notebook(s)" in capsys.readouterr().out


def test_unknown_papermill_parameter_is_a_clear_error():
    with pytest.raises(SystemExit, match="has no parameter"):
        runner.check_parameters(NOTEBOOKS[0], {"quikc": True})


def test_cli_finds_chapters_by_number():
    first = next(p for p in NOTEBOOKS if p.name.startswith("01_"))
    assert runner.find_chapter("1") == runner.find_chapter("01") == first
    assert runner.find_chapter("0") == runner.find_chapter("00") == NOTEBOOKS[0]
    with pytest.raises(SystemExit, match="no chapter"):
        runner.find_chapter("99")


def test_coursework_check_command_reports_each_chapter(capsys):
    assert cli.main(["coursework", "check", *[p.stem[:2] for p in NOTEBOOKS]]) == 0
    out = capsys.readouterr().out
    assert all(f"{p.stem}: OK" in out for p in NOTEBOOKS)
