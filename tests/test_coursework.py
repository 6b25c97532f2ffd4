"""Coursework: exercises found by their markers, nbgrader metadata, the student edition, %%check."""

from __future__ import annotations

import nbformat
import pytest

from llmtrain.course import coursework as cw
from llmtrain.course.coursework import BEGIN, END


def notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s[3:]) if s.startswith("md:")
                else nbformat.v4.new_code_cell(s) for s in sources]
    return nb


FUNCTION = f"def double(x):\n    # twice x\n    {BEGIN}\n    return 2 * x\n    {END}"
VALUES = (f"x = 3\n{BEGIN}\nhelper = [1, 2]\nanswer = x * 2\n"
          f"def area(r, pi=3.14):\n    return pi * r * r\n{END}")
CHECK_FN = 'assert double(2) == 4, "double(2) is 4: multiply by two"\nprint("ok")'
CHECK_VALUES = ('assert answer == 6, f"answer is {answer}: twice x"\n'
                'assert area(1) > 3, "area(r) is pi r squared"')


def test_free_names_follow_execution_order_and_scopes():
    assert cw.free_names("y = x + 1\nprint(y)") == {"x", "print"}
    assert cw.free_names("a, b = f(a)") == {"f", "a"}          # read before it is bound
    assert cw.free_names("[z for z in w if z > k]") == {"w", "k"}
    assert cw.free_names("def g(p, q=d):\n    return p + q + e\ng(1)") == {"d", "e"}
    assert cw.free_names("total += 1") == {"total"}
    assert cw.free_names("import math as m\nfor i in range(3):\n    m.sqrt(i)") == {"range"}
    assert cw.free_names("%%check a b\nprint(a)") == {"print", "a"}   # magics are ignored


def test_exercises_are_found_with_the_names_their_checks_read():
    nb = notebook("md:# title", FUNCTION, CHECK_FN, "md:next", VALUES, "print(1)\n" + CHECK_VALUES)
    ex = cw.find_exercises(nb)
    assert [(e.number, e.solution, e.check) for e in ex] == [(1, 1, 2), (2, 4, 5)]
    assert ex[0].answers == () and ex[1].answers == ("answer",)   # not `helper`, not `area`


def test_a_solution_without_a_check_cell_is_a_clear_error():
    with pytest.raises(cw.CourseworkError, match="no check cell follows"):
        cw.find_exercises(notebook(FUNCTION, "md:the end"))
    with pytest.raises(cw.CourseworkError, match="without"):
        cw.find_exercises(notebook(f"{BEGIN}\nx = 1", CHECK_FN))


def test_solutions_become_placeholders():
    stub = cw.strip_solutions(FUNCTION)
    assert "return 2 * x" not in stub and "# twice x" in stub
    assert 'raise NotImplementedError("double is not written yet")' in stub
    compile(stub, "stub", "exec")
    values = cw.strip_solutions(VALUES, answers=("answer",))
    assert "x * 2" not in values and "[1, 2]" not in values and "pi * r" not in values
    assert "answer = ..." in values and "def area(r, pi=3.14):" in values
    assert values.startswith("x = 3\n# YOUR CODE HERE")
    compile(values, "stub", "exec")
    inner = cw.strip_solutions(f"for i in range(2):\n    {BEGIN}\n    print(i)\n    {END}")
    compile(inner, "stub", "exec")                      # an indented block stays valid: pass
    assert "pass" in inner and "print(i)" not in inner


def test_tagging_gives_nbgrader_metadata_once_and_keeps_a_teachers_points():
    nb = notebook(FUNCTION, CHECK_FN, VALUES, CHECK_VALUES)
    assert cw.nbgrader_problems(nb)                      # untagged: problems reported
    assert cw.tag_exercises(nb) == 4
    assert cw.tag_exercises(nb) == 0                     # idempotent
    assert nb.cells[0].metadata.nbgrader == {
        "grade": False, "grade_id": "exercise_1_solution", "locked": False,
        "schema_version": 3, "solution": True, "task": False}
    assert nb.cells[1].metadata.nbgrader["points"] == 1 and nb.cells[1].metadata.nbgrader["locked"]
    assert cw.nbgrader_problems(nb) == []
    nb.cells[3].metadata.nbgrader["points"] = 3
    cw.tag_exercises(nb)
    assert nb.cells[3].metadata.nbgrader["points"] == 3


def test_nbgrader_problems_are_named():
    one = notebook(FUNCTION, CHECK_FN)
    cw.tag_exercises(one)
    assert any("at least 2" in p for p in cw.nbgrader_problems(one))
    bare = notebook(FUNCTION, "assert double(2) == 4", VALUES, CHECK_VALUES)
    cw.tag_exercises(bare)
    assert any("without a message" in p for p in cw.nbgrader_problems(bare))
    dup = notebook(FUNCTION, CHECK_FN, VALUES, CHECK_VALUES)
    cw.tag_exercises(dup)
    dup.cells[2].metadata.nbgrader["grade_id"] = "exercise_1_solution"
    assert any("used twice" in p for p in cw.nbgrader_problems(dup))


def test_the_student_edition_hides_solutions_and_outputs():
    nb = notebook("md:# t", FUNCTION, CHECK_FN, VALUES, CHECK_VALUES, "print('after')")
    cw.tag_exercises(nb)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="ok\n")]
    nb.cells[5].outputs = [nbformat.v4.new_output("stream", text="after\n")]
    student = cw.student_notebook(nb)
    sources = [c.source for c in student.cells]
    assert sources[1] == cw.LOAD_CELL                    # the magic is loaded before exercise 1
    assert all(BEGIN not in s and "return 2 * x" not in s for s in sources)
    assert sources[3].startswith("%%check\n") and sources[5].startswith("%%check answer\n")
    assert student.cells[3].outputs == [] and student.cells[6].outputs   # other outputs kept
    assert all("nbgrader" not in c.metadata for c in student.cells)
    assert BEGIN in nb.cells[1].source                   # the original is untouched


def test_run_check_says_not_solved_until_answered(capsys):
    ns = {"answer": ...}
    assert not cw.run_check("answer", "assert answer == 6, 'twice x'", ns)
    assert "not solved yet: `answer` is still `...`" in capsys.readouterr().out
    assert not cw.run_check("answer other", "pass", {"answer": 1})
    assert "`other` is not defined yet" in capsys.readouterr().out

    def stub():
        raise NotImplementedError("stub is not written yet")

    assert not cw.run_check("", "stub()", {"stub": stub})
    assert "not solved yet: stub is not written yet" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="twice x"):          # a wrong answer still fails
        cw.run_check("answer", "assert answer == 6, 'twice x'", {"answer": 5})
    ns = {"answer": 6}
    assert cw.run_check("answer", "assert answer == 6, 'twice x'\nseen = True", ns)
    assert ns["seen"] is True                                      # runs in the notebook's names


@pytest.mark.slow
def test_student_notebook_runs_in_a_kernel_and_then_passes_when_solved(tmp_path):
    from nbclient import NotebookClient

    nb = notebook("md:# t", FUNCTION, CHECK_FN, VALUES, CHECK_VALUES)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    student = cw.student_notebook(nb)
    NotebookClient(student, timeout=60, kernel_name="python3").execute()
    texts = ["".join(o.get("text", "") for o in c.outputs) for c in student.cells
             if c.cell_type == "code"]
    assert sum(cw.NOT_SOLVED in t for t in texts) == 2
    student.cells[2].source = "def double(x):\n    return x + x"       # the student answers
    student.cells[4].source = "answer = 6\ndef area(r):\n    return 3.14 * r * r"
    NotebookClient(student, timeout=60, kernel_name="python3").execute()
    texts = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in student.cells]
    assert not any(cw.NOT_SOLVED in t for t in texts) and "ok" in texts[3]


def test_the_student_edition_into_a_folder_that_cannot_be_written(tmp_path, capsys):
    from llmtrain.course import cli, paths

    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder\n")
    out = blocker / "student"
    nb_path = tmp_path / "01_t.ipynb"
    nbformat.write(notebook("md:# t", FUNCTION, CHECK_FN), nb_path)
    with pytest.raises(paths.FolderNotWritable, match=f"cannot write to {out}"):
        cw.write_student_edition([nb_path], out)
    assert cli.main(["student-edition", str(out), "--chapters", str(nb_path)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write to {out}" in err and "student-edition /tmp/student-edition" in err
    assert "Traceback" not in err
