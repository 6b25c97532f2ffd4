"""The headless runner behind ``python -m llmtrain run``: chapters through papermill, summarised.

``preflight`` checks the parameters of every chapter before anything runs: a
name the chapter does not have (papermill itself only warns) and a value its
validation cell refuses (the parameters cell, the overrides and the validation
cell are executed in this process, which takes a second). ``run_one`` executes
one chapter into an output folder and returns a ``ChapterRun``: status, seconds,
the kernel's peak memory and the key numbers the chapter recorded with
``chapter.record``. ``summary_table`` prints them.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .coursework import tag_exercises
from .paths import CHAPTERS_DIR, RECORDS_ENV, writable_folder

EPILOGUE_TAG = "llmtrain-runner"
EPILOGUE = ("# Added by `python -m llmtrain run`: the kernel's peak memory, for the summary.\n"
            "from llmtrain.course.runner import report_peak_memory\n"
            "report_peak_memory()")


class ParameterError(ValueError):
    """A parameter name or value that a chapter refuses, found before anything ran."""


@dataclass
class ChapterRun:
    """What one headless run of a chapter gave."""
    chapter: str                      # the notebook's stem, e.g. "04_pretraining"
    status: str                       # "ok", or "failed" / "timeout"
    seconds: float                    # wall-clock time of the papermill run, kernel start included
    peak_mb: float | None = None      # the kernel's peak resident memory (None if it failed)
    records: list[dict] = field(default_factory=list)   # [{"name", "value", "unit"}, ...]
    claims: int = 0                   # claim checks that printed ✔
    error: str | None = None          # "ExceptionName: message" of the failing cell
    output: str = ""                  # the executed notebook

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ---- parameters ---------------------------------------------------------------------------

def _cells(notebook: Path):
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    at = next((i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])),
              None)
    if at is None:
        raise ParameterError(f"{notebook.name} has no cell tagged 'parameters'")
    return code[at].source, (code[at + 1].source if at + 1 < len(code) else "")


def check_names(notebooks, params: dict) -> None:
    """Every parameter must exist in every chapter it is given to; say which ones it exists in."""
    import papermill

    for name in params:
        lacking, known = [], {}
        for nb in notebooks:
            names = set(papermill.inspect_notebook(str(nb)))
            known[nb] = names
            if name not in names:
                lacking.append(nb)
        if not lacking:
            continue
        having = [nb.stem.split("_")[0] for nb in notebooks if nb not in lacking]
        nb = lacking[0]
        close = difflib.get_close_matches(name, known[nb], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        where = (f" (chapters {', '.join(having)} have it: choose them with --chapters)"
                 if having else "")
        raise ParameterError(
            f"{nb.name} has no parameter {name!r}; its parameters are "
            f"{', '.join(sorted(known[nb]))}.{hint}{where}")


def check_values(notebook: Path, params: dict) -> None:
    """Run the parameters cell, the overrides and the chapter's validation cell here, quietly.

    A value the chapter's ``check_*`` calls refuse becomes a ``ParameterError`` naming
    the chapter, before any kernel starts.
    """
    parameters, validation = _cells(notebook)
    overrides = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    namespace: dict = {"__name__": "__llmtrain_preflight__"}
    cwd = os.getcwd()
    try:
        os.chdir(notebook.parent)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(parameters + "\n" + overrides, f"{notebook.name}: parameters", "exec"),
                 namespace)
            exec(compile(validation, f"{notebook.name}: validation cell", "exec"), namespace)
    except (ValueError, TypeError) as e:
        raise ParameterError(f"{notebook.name}: {e}") from None
    finally:
        os.chdir(cwd)


def preflight(notebooks, params: dict) -> None:
    """Names first (cheap), then values, for every chapter; raises ``ParameterError``."""
    check_names(notebooks, params)
    for nb in notebooks:
        check_values(nb, params)


# ---- running ------------------------------------------------------------------------------

def peak_memory_mb() -> float:
    """This process's peak resident memory in MB (10^6 bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6   # bytes vs KiB


def report_peak_memory() -> None:
    """The runner's last cell in a chapter's kernel: write the peak memory to the records file."""
    path = os.environ.get(RECORDS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"peak_mb": peak_memory_mb()}) + "\n")


def with_epilogue(nb):
    """The notebook with the runner's peak-memory cell appended (a new object)."""
    import copy

    import nbformat

    nb = copy.deepcopy(nb)
    cell = nbformat.v4.new_code_cell(EPILOGUE)
    cell.metadata["tags"] = [EPILOGUE_TAG]
    nb.cells.append(cell)
    return nb


def read_records(path: Path) -> tuple[list[dict], float | None]:
    """The records file: the last value of each name in first-seen order, and the peak."""
    by_name: dict[str, dict] = {}
    peak = None
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if "peak_mb" in entry:
                peak = entry["peak_mb"]
            else:
                by_name[entry["name"]] = entry
    return list(by_name.values()), peak


def _claims(nb) -> int:
    count = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            count += sum(line.startswith("✔ ") for line in text.splitlines())
    return count


def run_one(notebook: Path, out_dir: Path, params: dict, timeout: int = 600,
            progress: bool = False) -> ChapterRun:
    """Execute one chapter with papermill into ``out_dir``; never raises for a failing chapter."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / notebook.name
    nb = with_epilogue(nbformat.read(notebook, as_version=4))
    fd, records_path = tempfile.mkstemp(prefix=f"{notebook.stem}.", suffix=".jsonl")
    os.close(fd)
    before = os.environ.get(RECORDS_ENV)
    os.environ[RECORDS_ENV] = records_path
    status, error = "ok", None
    start = time.perf_counter()
    try:
        papermill.execute_notebook(nb, str(output), parameters=params, kernel_name="python3",
                                   progress_bar=progress, cwd=str(notebook.parent),
                                   execution_timeout=timeout)
    except PapermillExecutionError as e:
        status = "failed"
        error = f"{e.ename}: {e.evalue}".strip()
        if "timed out" in e.evalue.lower() or e.ename.endswith("TimeoutError"):
            status = "timeout"
    except Exception as e:  # noqa: BLE001  (a kernel that died, a timeout outside a cell)
        status = "timeout" if "timeout" in type(e).__name__.lower() else "failed"
        error = f"{type(e).__name__}: {e}"
    finally:
        seconds = time.perf_counter() - start
        if before is None:
            os.environ.pop(RECORDS_ENV, None)
        else:
            os.environ[RECORDS_ENV] = before
    records, peak = read_records(Path(records_path))
    os.unlink(records_path)
    claims = _claims(nbformat.read(output, as_version=4)) if output.exists() else 0
    return ChapterRun(notebook.stem, status, seconds, peak, records, claims, error, str(output))


def run_course(notebooks, params: dict, out_dir: Path, timeout: int = 600,
               echo=print) -> list[ChapterRun]:
    """Preflight, then every chapter in turn, echoing progress; returns the runs.

    An ``out_dir`` that cannot be written raises ``paths.FolderNotWritable`` before any
    chapter runs.
    """
    preflight(notebooks, params)
    out_dir = writable_folder(out_dir)
    runs = []
    tty = sys.stdout.isatty()
    for i, nb in enumerate(notebooks, 1):
        echo(f"[{i}/{len(notebooks)}] {nb.stem} ...", flush=True)
        run = run_one(nb, out_dir, params, timeout=timeout, progress=tty)
        line = f"      {run.status} in {run.seconds:.0f} s"
        if run.error:
            line += f": {run.error.splitlines()[0][:200]}"
        echo(line, flush=True)
        runs.append(run)
    write_summary(runs, out_dir, params)
    return runs


# ---- the summary --------------------------------------------------------------------------

def format_record(r: dict) -> str:
    v = r["value"]
    text = f"{v:,}" if isinstance(v, int) else f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    unit = r.get("unit", "")
    sep = "" if unit in ("%", "x") or not unit else " "
    return f"{r['name']} {text}{sep}{unit}"


def summary_rows(runs) -> list[list[str]]:
    rows = []
    for r in runs:
        numbers = "; ".join(format_record(x) for x in r.records)
        if r.error:
            first_line = r.error.splitlines()[0][:100]
            numbers = (numbers + "; " if numbers else "") + "error: " + first_line
        rows.append([r.chapter, r.status, f"{r.seconds:.0f}",
                     "-" if r.peak_mb is None else f"{r.peak_mb:,.0f}", str(r.claims), numbers])
    return rows


HEADER = ["chapter", "status", "seconds", "peak MB", "claims", "key numbers"]


def summary_table(runs) -> str:
    """A plain-text table, one line per chapter."""
    rows = [HEADER] + summary_rows(runs)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i in (0, 1) else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(HEADER[-1]))
    failed = [r for r in runs if not r.ok]
    total = sum(r.seconds for r in runs)
    lines.append(f"{len(runs) - len(failed)} of {len(runs)} chapters ok in {total:.0f} s"
                 + (f"; failed: {', '.join(r.chapter for r in failed)}" if failed else ""))
    return "\n".join(lines)


def summary_markdown(runs) -> str:
    rows = [HEADER, ["---"] * len(HEADER)] + summary_rows(runs)
    return "\n".join("| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows)


def write_summary(runs, out_dir: Path, params: dict) -> None:
    """``summary.json`` (everything) and ``summary.md`` (the table) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"parameters": params, "chapters": [asdict(r) for r in runs]}
    (out_dir / "summary.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (out_dir / "summary.md").write_text(summary_markdown(runs) + "\n")


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


def execute_in_place(notebook: Path, timeout: int = 900) -> float:
    """Run a chapter top to bottom with its default parameters and save it where it is.

    This is how the committed notebooks get their outputs (plain nbclient, as nbval
    runs them); returns the seconds taken.
    """
    import nbformat
    from nbclient import NotebookClient

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
