"""The headless runner: parameters checked before anything runs, records, peak memory, summary."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from llmtrain.course import chapter, cli, runner

from .conftest import CHAPTERS

TOKENIZATION = CHAPTERS / "03_tokenization.ipynb"


def tiny_chapter(path, body):
    """A chapter-shaped notebook: a parameters cell, a validation cell, then ``body``."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("quick = False\nn = 2        # 1 .. 5")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params,
                nbformat.v4.new_code_cell("from llmtrain.course.chapter import "
                                          "check_int, claim, record\n"
                                          "check_int('n', n, 1, 5)"),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def test_parameters_are_name_equals_value():
    assert cli.parse_params(["seed=1", "device=cpu", "ranks=[1, 4]", "lr=3e-4"]) == {
        "seed": 1, "device": "cpu", "ranks": [1, 4], "lr": 3e-4}
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        cli.parse_params(["seed"])
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        cli.parse_params(["1x=2"])


def test_a_wrong_name_is_reported_with_a_suggestion_and_where_it_exists():
    with pytest.raises(runner.ParameterError, match="no parameter 'quik'.*Did you mean 'quick'"):
        runner.check_names([TOKENIZATION], {"quik": True})
    lora = runner.find_chapter("11")
    with pytest.raises(runner.ParameterError, match="chapters 11 have it"):
        runner.check_names([TOKENIZATION, lora], {"ranks": [1]})
    runner.check_names([TOKENIZATION, lora], {"seed": 3, "quick": True})


def test_a_wrong_value_is_reported_by_the_chapters_own_checks():
    with pytest.raises(runner.ParameterError,
                       match="03_tokenization.*train_chars=5 must be a whole number from 20000"):
        runner.check_values(TOKENIZATION, {"train_chars": 5})
    with pytest.raises(runner.ParameterError, match="quick=.yes. must be True or False"):
        runner.check_values(TOKENIZATION, {"quick": "yes"})
    runner.check_values(TOKENIZATION, {"train_chars": 50_000, "seed": 4})


def test_record_keeps_numbers_and_writes_them_for_the_runner(tmp_path, monkeypatch):
    path = tmp_path / "records.jsonl"
    monkeypatch.setenv(chapter.RECORDS_ENV, str(path))
    chapter.record("loss", 1.25, "nats/token")
    chapter.record("steps", 40)
    chapter.record("loss", 1.0, "nats/token")              # the same name again: replaced
    records, peak = runner.read_records(path)
    assert records == [{"name": "loss", "value": 1.0, "unit": "nats/token"},
                       {"name": "steps", "value": 40, "unit": ""}]
    assert peak is None and chapter.records["loss"]["value"] == 1.0
    with pytest.raises(TypeError, match="must be a number"):
        chapter.record("accuracy", "93%")
    with pytest.raises(TypeError, match="use .item"):
        import torch

        chapter.record("loss", torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="non-empty"):
        chapter.record("", 1.0)
    monkeypatch.delenv(chapter.RECORDS_ENV)
    chapter.record("offline", 2.0)                            # no runner: kept, nothing written
    assert len(path.read_text().splitlines()) == 3


def test_the_summary_table_lists_status_time_memory_and_numbers():
    runs = [runner.ChapterRun("01_a", "ok", 12.4, 512.3,
                              [{"name": "loss", "value": 1.2345, "unit": "nats/token"},
                               {"name": "accuracy", "value": 93.0, "unit": "%"}], 3),
            runner.ChapterRun("02_b", "failed", 3.0, None, [], 0, "ClaimFailed: C4 was not shown")]
    table = runner.summary_table(runs)
    lines = table.splitlines()
    assert lines[0].split() == ["chapter", "status", "seconds", "peak", "MB", "claims",
                                "key", "numbers"]
    assert "01_a" in lines[2] and "512" in lines[2] and "loss 1.23 nats/token; accuracy 93%" \
        in lines[2]
    assert "failed" in lines[3] and "-" in lines[3] and "error: ClaimFailed" in lines[3]
    assert lines[-1] == "1 of 2 chapters ok in 15 s; failed: 02_b"
    assert runner.summary_markdown(runs).splitlines()[1].startswith("| --- |")


@pytest.mark.slow
def test_run_command_end_to_end(tmp_path, capsys):
    good = tiny_chapter(tmp_path / "01_good.ipynb",
                        "record('answer', 6 * n, 'things')\nclaim('C1', True, 'it works')")
    bad = tiny_chapter(tmp_path / "02_bad.ipynb", "raise RuntimeError('this chapter broke')")
    out = tmp_path / "out"
    assert cli.main(["run", str(good), "--out", str(out), "-p", "n=9"]) == 2
    err = capsys.readouterr().err
    assert "n=9 must be a whole number from 1 to 5" in err and "Nothing was run" in err
    assert not out.exists()

    code = cli.main(["run", "--chapters", str(good), str(bad), "--out", str(out), "-p", "n=3"])
    text = capsys.readouterr().out
    assert code == 1                                            # one chapter failed
    assert "[1/2] 01_good" in text and "answer 18 things" in text
    assert "RuntimeError: this chapter broke" in text
    summary = json.loads((out / "summary.json").read_text())
    first, second = summary["chapters"]
    assert first["status"] == "ok" and first["claims"] == 1 and 20 < first["peak_mb"] < 2000
    assert second["status"] == "failed" and second["peak_mb"] is None
    assert summary["parameters"] == {"n": 3}
    executed = nbformat.read(out / "01_good.ipynb", as_version=4)
    assert executed.cells[-1].metadata["tags"] == [runner.EPILOGUE_TAG]
    assert any("n = 3" in c.source for c in executed.cells)


def test_run_into_a_folder_that_cannot_be_written_says_which_and_what_to_pass(tmp_path, capsys):
    # A folder under a regular file cannot be made by anyone, root included (CI runs as root,
    # and root ignores chmod 0o555).
    good = tiny_chapter(tmp_path / "01_good.ipynb", "record('answer', 6 * n, 'things')")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder\n")
    out = blocker / "runs"
    assert cli.main(["run", str(good), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write to {out}" in err and "--out /tmp/runs" in err
    assert "Traceback" not in err


def test_run_with_the_default_folder_in_a_read_only_checkout(tmp_path, monkeypatch, capsys):
    good = tiny_chapter(tmp_path / "01_good.ipynb", "record('answer', 6 * n, 'things')")
    (tmp_path / "runs").write_text("a file where the default runs/ folder would go\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(good)]) == 2
    err = capsys.readouterr().err
    assert "runs" in err and "not a folder" in err and "--out /tmp/runs" in err


class _Refuses:
    """Stands in for the ``tempfile`` module: every file it is asked to make fails."""

    def __init__(self, error: OSError):
        self.error = error

    def mkstemp(self, *args, **kwargs):
        raise self.error


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"),
                                   OSError(30, "Read-only file system"),
                                   NotADirectoryError(20, "Not a directory")])
def test_an_unwritable_folder_is_reported_for_every_kind_of_os_error(tmp_path, monkeypatch,
                                                                     error):
    from llmtrain.course import paths

    monkeypatch.setattr(paths, "tempfile", _Refuses(error))
    with pytest.raises(paths.FolderNotWritable, match=error.strerror) as err:
        paths.writable_folder(tmp_path / "runs")
    assert isinstance(err.value, OSError) and err.value.folder == tmp_path / "runs"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores permission bits")
def test_a_read_only_folder_is_reported(tmp_path):
    from llmtrain.course import paths

    tmp_path.chmod(0o555)
    try:
        with pytest.raises(paths.FolderNotWritable, match="Permission denied"):
            paths.writable_folder(tmp_path / "runs")
    finally:
        tmp_path.chmod(0o755)
