"""Headless runs leave nothing behind: killing papermill or the runner stops its kernel too.

A kernel that outlives its client keeps its memory (a chapter holds up to 1.5 GB) and its
CPU. jupyter_client tells each kernel its parent's process id (JPY_PARENT_PID), and the
kernel exits when that parent goes away; these tests kill the parent the hard way (SIGKILL,
no clean-up code runs) in the middle of a cell and check that the kernel is gone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import nbformat
import pytest

psutil = pytest.importorskip("psutil")

PARAMS = "quick = False\ndevice = \"auto\"\nseed = 0\n"


def slow_chapter(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import time"),
                nbformat.v4.new_code_cell("time.sleep(120)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "99_slow.ipynb"
    nbformat.write(nb, path)
    return path


def kernels_of(proc: subprocess.Popen) -> list:
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "ipykernel_launcher" in " ".join(c.cmdline())]


def kill_and_watch(cmd, tmp_path) -> None:
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        kernels = []
        while not kernels and time.monotonic() < deadline:
            time.sleep(0.5)
            kernels = kernels_of(proc)
        assert kernels, "no kernel started within a minute"
        time.sleep(3)                                   # well inside time.sleep(120)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(kernels, timeout=15)
        assert not alive, f"kernel(s) {[k.pid for k in alive]} outlived their killed parent"
    finally:
        proc.kill()
        for k in kernels_of(proc):
            k.kill()


@pytest.mark.slow
def test_killing_plain_papermill_stops_its_kernel(tmp_path):
    nb = slow_chapter(tmp_path)
    kill_and_watch([sys.executable, "-m", "papermill", "--no-progress-bar", "-k", "python3",
                    str(nb), str(tmp_path / "out.ipynb")], tmp_path)


@pytest.mark.slow
def test_killing_the_runner_stops_its_kernel(tmp_path):
    nb = slow_chapter(tmp_path)
    kill_and_watch([sys.executable, "-m", "llmtrain", "run", str(nb), "--out",
                    str(tmp_path / "runs")], tmp_path)
