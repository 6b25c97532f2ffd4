"""``python -m llmtrain``: run chapters headless, rebuild or verify the course checkpoints.

    python -m llmtrain list
    python -m llmtrain run [--quick] [--chapters N ...] [-p NAME=VALUE ...] [--device D] [--out DIR]
    python -m llmtrain student-edition OUT/          the chapters without their solutions
    python -m llmtrain coursework tag|check [N ...]  nbgrader metadata: add it, or check it
    python -m llmtrain screenshots [DIR]             the README's pictures (JupyterLab, Chromium)
    python -m llmtrain execute CHAPTER ...   (maintainers: re-execute in place, for committing)
    python -m llmtrain zoo build [NAME ...] [--tokenizer]
    python -m llmtrain zoo verify [--deep]
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

from .zoo import ROOT

CHAPTERS_DIR = ROOT / "chapters"


def chapters() -> list[Path]:
    return sorted(CHAPTERS_DIR.glob("[0-9][0-9]_*.ipynb"))


def find_chapter(key: str) -> Path:
    """A chapter by number ("4", "04"), stem ("04_pretraining") or path."""
    p = Path(key)
    if p.suffix == ".ipynb" and p.exists():
        return p
    for nb in chapters():
        if nb.stem == key or nb.stem.split("_")[0] == key.zfill(2):
            return nb
    names = ", ".join(nb.stem for nb in chapters())
    raise SystemExit(f"no chapter {key!r}; the chapters are: {names}")


def check_parameters(notebook: Path, params: dict) -> None:
    """Fail clearly on a parameter the notebook does not have (papermill only warns)."""
    import papermill

    known = papermill.inspect_notebook(str(notebook))
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise SystemExit(f"{notebook.name} has no parameter(s) {unknown}; "
                         f"its parameters are {sorted(known)}")


def _poll_shell_in_slices() -> None:
    """Work around lost wake-ups in jupyter_client's asyncio channels (nbclient issue 312).

    With widgets in a cell, the kernel's execute reply sometimes arrives without
    waking the waiting poll, and papermill then waits for the whole timeout (or
    forever). Polling in half-second slices picks the reply up at the next slice.
    """
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    if getattr(AsyncZMQSocketChannel.get_msg, "_sliced", False):
        return
    original = AsyncZMQSocketChannel.get_msg

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await original(self, timeout=min(0.5, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    get_msg._sliced = True
    AsyncZMQSocketChannel.get_msg = get_msg


def run_chapter(notebook: Path, out_dir: Path, params: dict, timeout: int = 600) -> float:
    """Execute a chapter with papermill into ``out_dir``; returns the seconds it took."""
    import papermill

    check_parameters(notebook, params)
    _poll_shell_in_slices()
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    papermill.execute_notebook(str(notebook), str(out_dir / notebook.name), parameters=params,
                               kernel_name="python3", progress_bar=False,
                               cwd=str(notebook.parent), execution_timeout=timeout)
    return time.perf_counter() - start


def execute_in_place(notebook: Path, timeout: int = 900) -> float:
    """Run a chapter top to bottom with its default parameters and save it where it is.

    This is how the committed notebooks get their outputs (nbclient, as nbval
    runs them, with the shell-polling workaround); returns the seconds taken.
    """
    import nbformat
    from nbclient import NotebookClient

    from .coursework import tag_exercises

    _poll_shell_in_slices()
    nb = nbformat.read(notebook, as_version=4)
    tag_exercises(nb)                    # nbgrader metadata on every exercise's two cells
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    seconds = time.perf_counter() - start
    tmp = notebook.with_name(f".{notebook.name}.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(notebook)
    return seconds


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_params(pairs: list[str]) -> dict:
    """``["seed=1", "ranks=[1, 4]"]`` -> ``{"seed": 1, "ranks": [1, 4]}``.

    Values are Python literals where they parse as one, text otherwise (``device=cpu``).
    """
    params = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip().isidentifier():
            raise SystemExit(f"-p {pair!r}: write a parameter as NAME=VALUE, e.g. -p seed=1")
        params[name.strip()] = _value(value.strip())
    return params


def _run(args) -> int:
    from . import runner

    params = parse_params(args.param)
    if args.quick:
        params["quick"] = True
    if args.device is not None:
        params["device"] = args.device
    keys = list(args.chapters) + list(args.chapter_list or [])
    todo = list(dict.fromkeys(find_chapter(c) for c in keys)) or chapters()
    if args.student:
        from .coursework import write_student_edition

        student_dir = Path(args.out) / "student-edition"
        todo = write_student_edition(todo, student_dir)
        print(f"student edition of {len(todo)} chapter(s) in {student_dir}")
    try:
        runs = runner.run_course(todo, params, Path(args.out), timeout=args.timeout)
    except runner.ParameterError as e:
        print(f"error: {e}\nNothing was run.", file=sys.stderr)
        return 2
    print()
    print(runner.summary_table(runs))
    print(f"executed notebooks and summary.json / summary.md in {args.out}")
    return 0 if all(r.ok for r in runs) else 1


def _coursework(args) -> int:
    import nbformat

    from . import coursework

    todo = [find_chapter(c) for c in args.chapters] or chapters()
    bad = 0
    for nb_path in todo:
        nb = nbformat.read(nb_path, as_version=4)
        if args.coursework_command == "tag":
            changed = coursework.tag_exercises(nb)
            if changed:
                nbformat.write(nb, nb_path)
            print(f"{nb_path.stem}: {len(coursework.find_exercises(nb))} exercises, "
                  f"{changed} cell(s) tagged")
        else:
            problems = coursework.nbgrader_problems(nb)
            bad += bool(problems)
            print(f"{nb_path.stem}: {'OK' if not problems else 'PROBLEMS'}")
            for p in problems:
                print("  -", p)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmtrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the chapters")
    run = sub.add_parser("run", help="execute chapters headless with papermill, print a summary")
    run.add_argument("chapters", nargs="*", help="numbers or names (default: all)")
    run.add_argument("--chapters", dest="chapter_list", nargs="+", metavar="N",
                     help="numbers or names, as an option (same as the positional form)")
    run.add_argument("--quick", action="store_true", help="set quick=True (smoke run)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="set a parameter, e.g. -p seed=1 -p ranks=[1,4]")
    run.add_argument("--device", help='set device: "auto", "cpu", "cuda" or "mps"')
    run.add_argument("--out", default="runs", help="folder for executed notebooks (default runs/)")
    run.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    run.add_argument("--student", action="store_true",
                     help="run the student edition (solutions removed) instead")
    student = sub.add_parser("student-edition", help="write the chapters without their solutions")
    student.add_argument("out", help="folder to write the student notebooks to")
    student.add_argument("--chapters", nargs="+", default=[], metavar="N")
    cw = sub.add_parser("coursework", help="nbgrader metadata of the exercises")
    cw_sub = cw.add_subparsers(dest="coursework_command", required=True)
    for name, text in (("tag", "add nbgrader metadata to every exercise's cells"),
                       ("check", "check exercises and nbgrader metadata")):
        p = cw_sub.add_parser(name, help=text)
        p.add_argument("chapters", nargs="*", help="numbers or names (default: all)")
    shots = sub.add_parser("screenshots", help="the README's playground pictures, from JupyterLab")
    shots.add_argument("out", nargs="?", default=str(ROOT / "assets" / "figures"))
    execute = sub.add_parser("execute", help="re-execute chapters in place (for committing)")
    execute.add_argument("chapters", nargs="+", help="numbers or names")
    zoo = sub.add_parser("zoo", help="the course checkpoints")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    build = zoo_sub.add_parser("build", help="retrain checkpoints from their recipes")
    build.add_argument("names", nargs="*")
    build.add_argument("--tokenizer", action="store_true", help="retrain the tokenizer first")
    build.add_argument("--device", default="auto")
    verify = zoo_sub.add_parser("verify", help="check checkpoints against code and manifests")
    verify.add_argument("--deep", action="store_true", help="also re-measure the metrics")
    args = parser.parse_args(argv)

    if args.command == "list":
        for nb in chapters():
            print(nb.stem)
        return 0
    if args.command == "run":
        return _run(args)
    if args.command == "student-edition":
        from .coursework import write_student_edition

        todo = [find_chapter(c) for c in args.chapters] or chapters()
        for path in write_student_edition(todo, Path(args.out)):
            print(f"{path}")
        print(f"{len(todo)} student notebook(s): solutions removed, checks say "
              "'not solved yet' until answered")
        return 0
    if args.command == "coursework":
        return _coursework(args)
    if args.command == "screenshots":
        from . import browser

        why = browser.missing_requirements()
        if why:
            raise SystemExit(f"cannot take screenshots: {why}")
        for path in browser.take_screenshots(Path(args.out), CHAPTERS_DIR):
            print(f"{path} ({path.stat().st_size / 1e3:.0f} KB)")
        return 0
    if args.command == "execute":
        for nb in [find_chapter(c) for c in args.chapters]:
            print(f"{nb.stem}: executed in place in {execute_in_place(nb):.0f} s")
        return 0
    from . import zoo as zoo_mod

    if args.zoo_command == "build":
        if args.tokenizer:
            zoo_mod.build_tokenizer()
            zoo_mod.course_tokenizer.cache_clear()
        for name in args.names or list(zoo_mod.RECIPES):
            m = zoo_mod.build(name, device=args.device)
            print(f"{name}: {m['metrics']} ({m['built_with']['seconds']} s)")
        return 0
    problems = []
    for name in zoo_mod.RECIPES:
        found = zoo_mod.verify(name, deep=args.deep)
        problems += found
        print(f"{name}: {'OK' if not found else 'PROBLEMS'}")
    for p in problems:
        print("  -", p, file=sys.stderr)
    return 1 if problems else 0
