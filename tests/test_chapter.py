"""Chapter helpers: the device check, refusing parameters a chapter does not have, the timer."""

from __future__ import annotations

import nbformat
import pytest

from llmtrain.course.chapter import SectionTimer, check_device, refuse_unknown_parameters

PARAMS = "quick = False   # smaller and faster\nseed = 0\nsteps = 100\n"


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:3", "mps", "CPU"])
def test_the_device_check_takes_what_the_device_picker_takes(value):
    check_device(value)


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "tpu", 0, None])
def test_the_device_check_refuses_the_rest(value):
    with pytest.raises(ValueError, match="cuda:N"):
        check_device(value)


def test_an_injected_parameter_the_chapter_lacks_is_refused_with_a_suggestion():
    history = ["", PARAMS, "# Parameters\nquikc = True\nseed = 3\n", "setup(seed)"]
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['quikc'\].*'quikc' -> 'quick'"):
        refuse_unknown_parameters(history)


def test_known_parameters_and_runs_without_papermill_pass():
    refuse_unknown_parameters(["", PARAMS, "# Parameters\nquick = True\nsteps = 20\n", "x"])
    refuse_unknown_parameters(["", PARAMS, "setup(seed)"])          # JupyterLab, nbval
    refuse_unknown_parameters([])
    refuse_unknown_parameters()                                     # not in IPython at all


@pytest.mark.slow
def test_plain_papermill_stops_at_an_unknown_parameter(tmp_path):
    papermill = pytest.importorskip("papermill")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "from llmtrain.course.chapter import setup\ndevice = setup(seed, 'cpu')"),
        nbformat.v4.new_code_cell("print('the chapter ran on')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    src = tmp_path / "tiny.ipynb"
    nbformat.write(nb, src)
    with pytest.raises(papermill.PapermillExecutionError, match="no parameter"):
        papermill.execute_notebook(str(src), str(tmp_path / "out.ipynb"),
                                   parameters={"quikc": True}, progress_bar=False,
                                   kernel_name="python3")
    papermill.execute_notebook(str(src), str(tmp_path / "ok.ipynb"), parameters={"steps": 5},
                               progress_bar=False, kernel_name="python3")


def test_the_section_timer_adds_up(capsys):
    timer = SectionTimer()
    assert timer.lap("a") is None             # a cell ending with lap(...) shows nothing
    timer.lap("b")
    timer.lap("a")
    assert list(timer.seconds) == ["a", "b"] and min(timer.seconds.values()) >= 0
    timer.report(10)
    out = capsys.readouterr().out
    assert out.startswith("seconds per section on this machine:") and "total" in out
