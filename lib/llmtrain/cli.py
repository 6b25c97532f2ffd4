"""``python -m llmtrain``: run chapters headless, rebuild or verify the course checkpoints.

    python -m llmtrain list
    python -m llmtrain run [CHAPTER ...] [--quick] [-p NAME VALUE ...] [--out DIR]
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


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmtrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the chapters")
    run = sub.add_parser("run", help="execute chapters headless with papermill")
    run.add_argument("chapters", nargs="*", help="numbers or names (default: all)")
    run.add_argument("--quick", action="store_true", help="set quick=True (smoke run)")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"), help="set a parameter, e.g. -p seed 1")
    run.add_argument("--out", default="runs", help="folder for executed notebooks")
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
        params = {name: _value(value) for name, value in args.param}
        if args.quick:
            params["quick"] = True
        todo = [find_chapter(c) for c in args.chapters] or chapters()
        for nb in todo:
            seconds = run_chapter(nb, Path(args.out), params)
            print(f"{nb.stem}: ran in {seconds:.0f} s -> {Path(args.out) / nb.name}")
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
