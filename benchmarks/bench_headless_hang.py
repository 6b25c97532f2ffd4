"""Does plain papermill hang after a widget cell? Counts hangs, beside a busy process.

jupyter/nbclient issue 312: when a cell writes into an ``ipywidgets.Output``, nbclient's
Output-widget mimic sends a message on the kernel's shell channel from inside its output
handler while it waits for the cell's reply on that same channel, and the wake-up for the
reply can be lost. The kernel has finished; papermill waits forever. It shows most on a busy
machine. The course's Playground therefore never captures output (it sets widget values).

This script runs notebooks with plain ``papermill`` (no workaround of ours), each run with a
time limit, while one extra process keeps a core busy, and prints how many runs hung:

    python benchmarks/bench_headless_hang.py                   # the two minimal notebooks
    python benchmarks/bench_headless_hang.py --runs 8 --busy 0  # on a quiet machine
    python benchmarks/bench_headless_hang.py --chapters 01 06 --runs 2   # real chapters, quick

* ``output``: 40 cells that each write into an ``Output`` widget (the trigger);
* ``playground``: 40 cells that each show a course ``Playground`` (sliders, text, a figure).

A run that passes its time limit is counted as hung and killed with its whole process group,
kernel included. Nothing here is a test: timings and hang rates depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

OUTPUT_CELL = """out = W.Output()
display(out)
with out:
    print("cell {i}")
    display(HTML("<b>{i}</b>"))"""

PLAYGROUND_CELL = """Playground(lambda n: (square_figure(n), f"n = {{n}}"),
           {{"n": slider({i} % 7 + 1, 1, 8, description="n")}})"""

SETUP = """import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import HTML, display

from llmtrain.viz.widgets import Playground, slider


def square_figure(n):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(range(n + 1), [i * i for i in range(n + 1)])
    return fig"""


def minimal_notebook(kind: str, cells: int = 40) -> nbformat.NotebookNode:
    body = OUTPUT_CELL if kind == "output" else PLAYGROUND_CELL
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP)] + [
        nbformat.v4.new_code_cell(body.format(i=i)) for i in range(cells)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def run_plain_papermill(notebook: Path, out: Path, limit: float,
                        params: list[str]) -> tuple[str, float]:
    """("ok" | "failed" | "hung", seconds). A hung run is killed with its process group."""
    cmd = [sys.executable, "-m", "papermill", "--no-progress-bar", "-k", "python3",
           str(notebook), str(out), *params]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, cwd=notebook.parent)
    try:
        _, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "hung", time.perf_counter() - start
    status = "ok" if proc.returncode == 0 else "failed"
    if status == "failed":
        print(err.decode(errors="replace")[-800:], file=sys.stderr)
    return status, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per notebook")
    ap.add_argument("--busy", type=int, default=1, help="busy processes beside (default 1)")
    ap.add_argument("--limit", type=float, default=120, help="seconds before a run counts as hung")
    ap.add_argument("--chapters", nargs="*", default=None,
                    help="run these chapters (quick=True) instead of the minimal notebooks")
    args = ap.parse_args()

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.busy)]
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            if args.chapters is None:
                cases = []
                for kind in ("output", "playground"):
                    path = tmp / f"{kind}.ipynb"
                    nbformat.write(minimal_notebook(kind), path)
                    cases.append((kind, path, []))
            else:
                cases = []
                for key in args.chapters:
                    path = next((ROOT / "chapters").glob(f"{key.zfill(2)}_*.ipynb"))
                    cases.append((path.stem, path, ["-p", "quick", "True"]))
            for name, path, params in cases:
                results = []
                for r in range(args.runs):
                    status, seconds = run_plain_papermill(path, tmp / f"out-{r}.ipynb",
                                                          args.limit, params)
                    results.append((status, seconds))
                    print(f"{name:<28} run {r + 1}/{args.runs}: {status:<6} {seconds:6.1f} s",
                          flush=True)
                rows.append((name, results))
    finally:
        for p in busy:
            p.kill()
    print(f"\nplain papermill, {args.busy} busy process(es) beside, limit {args.limit:.0f} s")
    print(f"{'notebook':<28} {'runs':>4} {'ok':>4} {'failed':>6} {'hung':>4} {'median s':>9}")
    for name, results in rows:
        count = {s: sum(r[0] == s for r in results) for s in ("ok", "failed", "hung")}
        done = sorted(sec for s, sec in results if s != "hung") or [float("nan")]
        print(f"{name:<28} {len(results):>4} {count['ok']:>4} {count['failed']:>6} "
              f"{count['hung']:>4} {done[len(done) // 2]:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
