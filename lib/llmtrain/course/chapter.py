"""The first and last cells of every chapter: setup, parameter checks, claim checks.

A chapter's ``parameters`` cell can be overridden by papermill
(``-p quick True``) or by a student. ``check_*`` turn a bad value into an error
that names the parameter and its allowed values, before any work starts.
``claim`` turns a measured effect into a check that CI runs, with a message
a student understands when it fails.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import time

import torch

from ..core.device import describe, pick_device, seed_everything, set_threads
from .paths import RECORD_KEY, RECORDS_ENV


def setup(seed: int = 0, device: str = "auto", threads: int | None = None) -> torch.device:
    """Refuse parameters the chapter does not have, seed everything, pick the device, print
    one line about it; returns the device."""
    refuse_unknown_parameters()
    check_int("seed", seed, 0, 2**31 - 1)
    set_threads(threads)
    seed_everything(seed)
    dev = pick_device(device)
    print(f"Running on {describe(dev)}; seed {seed}.")
    return dev


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(
            f"parameter {name}={value!r} is not allowed: choose one of {list(choices)}")


def check_device(value) -> None:
    """``device`` as the device picker takes it: "auto", "cpu", "cuda", "cuda:N" or "mps"."""
    if not (isinstance(value, str)
            and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value.strip().lower())):
        raise ValueError(f"parameter device={value!r} is not allowed: choose 'auto', 'cpu', "
                         "'cuda' (or 'cuda:N' for GPU number N) or 'mps'")


def refuse_unknown_parameters(history: list[str] | None = None) -> None:
    """Refuse a parameter that papermill injected but the chapter does not have.

    Plain papermill only warns about an unknown name (``-p quikc True``) and runs the
    whole chapter with the defaults. It writes the values into a cell of their own,
    right after the ``parameters`` cell, starting with ``# Parameters``; both cells are
    in the kernel's input history (``_ih``), so the chapter can compare their names.
    ``history`` is for tests; by default it is the running kernel's.
    """
    if history is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
        history = list(shell.user_ns.get("_ih", [])) if shell is not None else []
    at = next((i for i in range(len(history) - 1, 0, -1)
               if history[i].lstrip().startswith("# Parameters")), None)
    if at is None:
        return
    injected, known = _assigned(history[at]), _assigned(history[at - 1])
    unknown = sorted(injected - known)
    if known and unknown:
        hints = [f"{u!r} -> {close[0]!r}" for u in unknown
                 if (close := difflib.get_close_matches(u, known, n=1))]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise ValueError(f"this chapter has no parameter(s) {unknown}{hint}; its parameters "
                         f"are {sorted(known)}")


def _assigned(source: str) -> set[str]:
    """Names a cell assigns at its top level."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        for t in targets:
            names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"parameter {name}={value!r} must be a whole number from {lo} to {hi}")


def check_float(name: str, value, lo: float, hi: float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"parameter {name}={value!r} must be a number from {lo:g} to {hi:g}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"parameter {name}={value!r} must be True or False")


class ClaimFailed(AssertionError):
    """A chapter's demonstration did not show what it should."""


def claim(cid: str, holds: bool, statement: str, evidence: str = "") -> None:
    """Check one syllabus claim against a measurement; print it or fail with advice."""
    detail = f" ({evidence})" if evidence else ""
    if not holds:
        raise ClaimFailed(
            f"{cid} was not shown: expected {statement}{detail}. If you changed the "
            "parameters, the experiment may be too small now; rerun with the defaults.")
    print(f"✔ {cid}: {statement}{detail}")


class Stopwatch:
    """``with Stopwatch() as t: ...`` then ``t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


class SectionTimer:
    """Seconds per section of a chapter: ``lap("name")`` ends a section, ``report()`` prints.

    Each chapter makes one right after its parameters (``lap = SectionTimer().lap`` is
    enough to time sections); the last cell calls ``report`` so a reader sees where the
    time went on their machine.
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, section: str) -> None:
        """End ``section`` now (a section timed twice adds up). Returns nothing, so a cell
        that ends with ``lap(...)`` prints nothing."""
        now = time.perf_counter()
        self.seconds[section] = self.seconds.get(section, 0.0) + now - self._last
        self._last = now

    def report(self, width: int = 30) -> None:
        """Print every section's seconds and the total."""
        print("seconds per section on this machine:")
        for section, seconds in self.seconds.items():
            print(f"  {section:<{width}}{seconds:6.1f} s")
        print(f"  {'total':<{width}}{sum(self.seconds.values()):6.1f} s")


# ---- key numbers for the headless runner -------------------------------------------------

records: dict[str, dict] = {}


def record(name: str, value, unit: str = "") -> None:
    """Keep one of the chapter's key numbers (a claim's measurement) for ``llmtrain run``.

    Prints nothing visible. In a notebook the value also goes into the cell's outputs, as
    an empty display whose metadata holds it (``RECORD_KEY``), so the committed notebook
    keeps its own measurements: tests/test_prose_numbers.py checks that the chapter's text
    does not state another figure for them. ``python -m llmtrain run`` sets the variable
    ``LLMTRAIN_RECORDS`` to a file; each call appends one JSON line there
    (``{"name", "value", "unit"}``), and the run's summary table lists them.
    Recording the same name again replaces the value. ``value`` is a number;
    ``unit`` says what it measures ("nats/token", "%", "s").
    """
    import json
    import numbers
    import os

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"record: name must be a non-empty string, got {name!r}")
    if not isinstance(unit, str):
        raise TypeError(f"record: unit must be a string such as 'nats/token', got {unit!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        hint = " (a tensor? use .item())" if hasattr(value, "item") else ""
        raise TypeError(f"record: {name!r} must be a number, got {type(value).__name__}{hint}")
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    records[name] = {"name": name, "value": value, "unit": unit}
    _leave_in_notebook(records[name])
    path = os.environ.get(RECORDS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(records[name]) + "\n")


def _leave_in_notebook(entry: dict) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import publish_display_data
    except ImportError:
        return
    if get_ipython() is not None:
        publish_display_data({"text/plain": ""}, metadata={RECORD_KEY: entry})
