"""Coursework: the exercises of the chapters, for teachers (nbgrader) and students.

Every exercise in a chapter is two code cells in a row:

- a **solution cell**: the reference answer between nbgrader's markers
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (code before and after the
  markers is given to the student);
- a **check cell**, the next code cell: ``assert`` statements whose messages say
  what is wrong and give a hint.

``tag_exercises`` gives both cells nbgrader's metadata, so that a teacher can run
nbgrader on the chapters directly; ``nbgrader_problems`` checks it.
``student_notebook`` makes the student edition of a chapter: each solution is
replaced by a placeholder (``# YOUR CODE HERE``, a stub that raises
``NotImplementedError`` inside a function, ``name = ...`` for a value), and each
check cell starts with the cell magic ``%%check NAME ...`` of this module, which
prints "not solved yet" instead of failing while an answer is missing. A wrong
answer still fails with the check's message.
"""

from __future__ import annotations

import ast
import copy
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .paths import writable_folder

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PLACEHOLDER = "# YOUR CODE HERE"
NOT_SOLVED = "not solved yet"
LOAD_CELL = ("# Student edition: each check below says \"not solved yet\" until you write your "
             "answer.\n%load_ext llmtrain.coursework")
GRADE_ID = re.compile(r"^[A-Za-z0-9_\-]+$")


class CourseworkError(ValueError):
    """A chapter's exercises are not in the form this module can work with."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: the indices (in ``nb.cells``) of its solution and check cells.

    ``answers`` are the names the check cell reads that the solution defines at the
    top level (placeholders ``name = ...`` in the student edition).
    """
    number: int
    solution: int
    check: int
    answers: tuple[str, ...]


# ---- finding exercises ---------------------------------------------------------------------

def find_exercises(nb) -> list[Exercise]:
    """The exercises of a notebook, in order; a solution cell without a check cell is an error."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or BEGIN not in cell.source:
            continue
        check = next((j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"),
                     None)
        if check is None or BEGIN in nb.cells[check].source:
            raise CourseworkError(f"cell {i} holds a solution but no check cell follows it: "
                                  "put the asserts of the exercise in the next code cell")
        defined = set()
        for region in _regions(cell.source):
            defined |= _top_level_values(region)
        answers = tuple(sorted(defined & free_names(nb.cells[check].source)))
        found.append(Exercise(len(found) + 1, i, check, answers))
    return found


def _regions(source: str) -> list[str]:
    """The code between each pair of solution markers (dedented)."""
    return [textwrap.dedent("\n".join(lines)) for _, _, _, lines in _split_markers(source)]


def _split_markers(source: str):
    """Yield (begin line, end line, indent, lines between) for every solution region."""
    lines = source.split("\n")
    begin = None
    for n, line in enumerate(lines):
        if line.strip() == BEGIN:
            if begin is not None:
                raise CourseworkError(f"{BEGIN} twice without {END} in between")
            begin = n
        elif line.strip() == END:
            if begin is None:
                raise CourseworkError(f"{END} without {BEGIN}")
            indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
            yield begin, n, indent, lines[begin + 1: n]
            begin = None
    if begin is not None:
        raise CourseworkError(f"{BEGIN} without {END}")


def _top_level_values(region: str) -> set[str]:
    """Names a region binds at module level, except functions and classes (those get stubs)."""
    try:
        tree = ast.parse(region)
    except SyntaxError:
        return set()                      # a function body: its names are local
    names = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
                                 ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                break
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def free_names(source: str) -> set[str]:
    """Names a cell reads before it binds them itself (so they must come from earlier cells).

    >>> sorted(free_names("y = x + 1\\nprint(y, [z for z in w])"))
    ['print', 'w', 'x']
    """
    free: set[str] = set()
    _FreeNames(set(), free).visit_body(ast.parse(_without_magics(source)).body)
    return free


def _without_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.split("\n"))


class _FreeNames(ast.NodeVisitor):
    """Walks statements in execution order; ``bound`` grows as names are assigned."""

    def __init__(self, bound: set[str], free: set[str]):
        self.bound, self.free = bound, free

    def visit_body(self, stmts):
        for s in stmts:
            self.visit(s)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            if node.id not in self.bound:
                self.free.add(node.id)
        else:
            self.bound.add(node.id)

    def visit_Assign(self, node):
        self.visit(node.value)
        for t in node.targets:
            self.visit(t)

    def visit_AugAssign(self, node):
        self.visit(node.value)
        if isinstance(node.target, ast.Name) and node.target.id not in self.bound:
            self.free.add(node.target.id)
        self.visit(node.target)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_NamedExpr(self, node):
        self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node):
        self.visit(node.iter)
        self.visit(node.target)
        self.visit_body(node.body)
        self.visit_body(node.orelse)

    visit_AsyncFor = visit_For

    def _function(self, node, name=None):
        args = node.args
        for d in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(d)
        for dec in getattr(node, "decorator_list", []):
            self.visit(dec)
        params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        if name:
            self.bound.add(name)
        inner = _FreeNames(self.bound | params, self.free)
        body = node.body if isinstance(node.body, list) else [node.body]
        inner.visit_body(body)

    def visit_FunctionDef(self, node):
        self._function(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._function(node)

    def visit_ClassDef(self, node):
        for b in node.bases + node.decorator_list:
            self.visit(b)
        _FreeNames(set(self.bound), self.free).visit_body(node.body)
        self.bound.add(node.name)

    def _comprehension(self, node, elts):
        first, *rest = node.generators
        self.visit(first.iter)
        inner = _FreeNames(set(self.bound), self.free)
        inner.visit(first.target)
        for cond in first.ifs:
            inner.visit(cond)
        for gen in rest:
            inner.visit(gen.iter)
            inner.visit(gen.target)
            for cond in gen.ifs:
                inner.visit(cond)
        for e in elts:
            inner.visit(e)

    def visit_ListComp(self, node):
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node):
        self._comprehension(node, [node.key, node.value])

    def visit_Import(self, node):
        for a in node.names:
            self.bound.add((a.asname or a.name).split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node):
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bound.add(node.name)
        self.visit_body(node.body)

    def visit_With(self, node):
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
        self.visit_body(node.body)

    visit_AsyncWith = visit_With


# ---- nbgrader metadata ---------------------------------------------------------------------

def solution_metadata(grade_id: str) -> dict:
    return {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3,
            "solution": True, "task": False}


def check_metadata(grade_id: str, points: int = 1) -> dict:
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
            "schema_version": 3, "solution": False, "task": False}


def tag_exercises(nb) -> int:
    """Give every exercise's cells nbgrader metadata (in place); returns how many cells changed.

    Points already set on a check cell by a teacher are kept.
    """
    changed = 0
    for ex in find_exercises(nb):
        sol, chk = nb.cells[ex.solution], nb.cells[ex.check]
        points = chk.metadata.get("nbgrader", {}).get("points", 1)
        for cell, meta in ((sol, solution_metadata(f"exercise_{ex.number}_solution")),
                           (chk, check_metadata(f"exercise_{ex.number}_check", points))):
            if cell.metadata.get("nbgrader") != meta:
                cell.metadata["nbgrader"] = meta
                changed += 1
    return changed


def nbgrader_problems(nb, min_exercises: int = 2) -> list[str]:
    """What keeps nbgrader (or a student) from using this notebook's exercises; [] if nothing."""
    try:
        exercises = find_exercises(nb)
    except CourseworkError as e:
        return [str(e)]
    problems = []
    if len(exercises) < min_exercises:
        problems.append(f"{len(exercises)} exercise(s); every chapter needs at least "
                        f"{min_exercises}")
    ids = [c.metadata["nbgrader"].get("grade_id") for c in nb.cells
           if "nbgrader" in c.metadata]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"grade_id {dup!r} is used twice")
    for i in ids:
        if not isinstance(i, str) or not GRADE_ID.match(i):
            problems.append(f"grade_id {i!r} must be letters, digits, '_' or '-'")
    for ex in exercises:
        sol = nb.cells[ex.solution].metadata.get("nbgrader", {})
        chk = nb.cells[ex.check].metadata.get("nbgrader", {})
        where = f"exercise {ex.number} (cells {ex.solution} and {ex.check})"
        if not (sol.get("solution") is True and sol.get("grade") is False
                and sol.get("locked") is False and sol.get("schema_version") == 3):
            problems.append(f"{where}: the solution cell lacks nbgrader's solution metadata "
                            "(run `python -m llmtrain coursework tag`)")
        if not (chk.get("grade") is True and chk.get("solution") is False
                and chk.get("locked") is True and chk.get("schema_version") == 3
                and isinstance(chk.get("points"), (int, float)) and chk["points"] > 0):
            problems.append(f"{where}: the check cell lacks nbgrader's grading metadata "
                            "(run `python -m llmtrain coursework tag`)")
        problems += [f"{where}: {p}" for p in check_cell_problems(nb.cells[ex.check].source)]
    solution_cells = {ex.solution for ex in exercises}
    for i, c in enumerate(nb.cells):
        if c.metadata.get("nbgrader", {}).get("solution") and i not in solution_cells:
            problems.append(f"cell {i} is marked as a solution but has no {BEGIN} marker")
    return problems


def check_cell_problems(source: str) -> list[str]:
    """A check must be able to fail helpfully: asserts with messages, no bare ``assert x``."""
    try:
        tree = ast.parse(_without_magics(source))
    except SyntaxError as e:
        return [f"the check cell does not parse: {e}"]
    asserts = [n for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    problems = [] if asserts else ["the check cell has no assert"]
    for a in asserts:
        if a.msg is None:
            problems.append(f"line {a.lineno}: an assert without a message; say what is wrong "
                            "and give a hint")
    return problems


# ---- the student edition -------------------------------------------------------------------

def strip_solutions(source: str, answers=()) -> str:
    """The cell's source with every solution region replaced by a placeholder.

    Inside a function body the placeholder raises ``NotImplementedError``; at the top
    level, functions defined by the solution become stubs and the ``answers`` it
    defines become ``name = ...``.
    """
    lines = source.split("\n")
    regions = list(_split_markers(source))
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise CourseworkError(f"the solution cell does not parse: {e}") from None
    for begin, end, indent, body in reversed(regions):
        func = _enclosing_function(tree, begin + 2, end) if indent else None
        if func is not None:
            stub = [PLACEHOLDER, f'raise NotImplementedError("{func} is not written yet")']
        else:
            stub = [PLACEHOLDER] + _stubs(textwrap.dedent("\n".join(body)), answers)
            if indent and len(stub) == 1:
                stub.append("pass")
        lines[begin: end + 1] = [indent + s if s else s for s in stub]
    return "\n".join(lines).rstrip() + "\n" if source.endswith("\n") else "\n".join(lines)


def _enclosing_function(tree, first: int, last: int) -> str | None:
    """The innermost function around the statements on lines first..last (1-based), if any."""
    best = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside = any(first <= stmt.lineno <= last for stmt in ast.walk(node)
                         if isinstance(stmt, ast.stmt) and stmt is not node)
            if inside and node.lineno < first and (best is None or node.lineno > best.lineno):
                best = node
    return None if best is None else best.name


def _stubs(region: str, answers) -> list[str]:
    """Stubs for the functions a top-level region defines, and ``name = ...`` for its answers."""
    out = []
    try:
        tree = ast.parse(region)
    except SyntaxError as e:
        raise CourseworkError(f"a solution region does not parse on its own: {e}") from None
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out += [f"def {stmt.name}({ast.unparse(stmt.args)}):",
                    f'    raise NotImplementedError("{stmt.name} is not written yet")', ""]
    values = [a for a in answers if a in _top_level_values(region)]
    if values:
        out.append(" = ".join(values) + " = ...")
    while out and not out[-1]:
        out.pop()
    return out


def student_notebook(nb):
    """A copy of a chapter with its solutions removed and its checks tolerant of missing answers.

    The outputs of the exercise cells are cleared (they would show the answers); the
    other cells keep theirs. nbgrader metadata is dropped: nbgrader makes its own
    student version from the chapters.
    """
    exercises = find_exercises(nb)
    student = copy.deepcopy(nb)
    for ex in exercises:
        sol, chk = student.cells[ex.solution], student.cells[ex.check]
        sol.source = strip_solutions(sol.source, ex.answers)
        chk.source = f"%%check {' '.join(ex.answers)}".rstrip() + "\n" + chk.source
        for cell in (sol, chk):
            cell.outputs, cell.execution_count = [], None
    for cell in student.cells:
        cell.metadata.pop("nbgrader", None)
    if exercises:
        import nbformat

        load = nbformat.v4.new_code_cell(LOAD_CELL)
        load.metadata["tags"] = ["student-edition"]
        student.cells.insert(exercises[0].solution, load)
    return student


def write_student_edition(notebooks, out_dir) -> list[Path]:
    """Write the student edition of each chapter into ``out_dir``; returns the paths written.

    A folder that cannot be written raises ``paths.FolderNotWritable`` before any is read.
    """
    import nbformat

    out_dir = writable_folder(out_dir)
    written = []
    for path in notebooks:
        path = Path(path)
        try:
            student = student_notebook(nbformat.read(path, as_version=4))
        except CourseworkError as e:
            raise CourseworkError(f"{path.name}: {e}") from None
        target = out_dir / path.name
        nbformat.write(student, target)
        written.append(target)
    return written


# ---- the %%check cell magic ----------------------------------------------------------------

def missing_answers(names, namespace: dict) -> list[str]:
    """The names that are not defined yet, or still the placeholder ``...``."""
    return [n for n in names if n not in namespace or namespace[n] is Ellipsis]


def run_check(line: str, cell: str, namespace: dict, filename: str = "<check>") -> bool:
    """Run a check cell unless its answers are missing; True if it ran to the end.

    Missing answers (or a stub that raises ``NotImplementedError``) print
    "not solved yet: ..."; any other error, such as a failed assert, propagates.
    """
    __tracebackhide__ = True
    names = line.split()
    missing = missing_answers(names, namespace)
    if missing:
        listed = ", ".join(f"`{n}`" for n in missing[:-1])
        listed = f"{listed} and `{missing[-1]}`" if listed else f"`{missing[-1]}`"
        state = "is" if len(missing) == 1 else "are"
        undefined = [n for n in missing if n not in namespace]
        why = f"{state} not defined yet" if undefined else f"{state} still `...`"
        print(f"✎ {NOT_SOLVED}: {listed} {why}; write your answer in the cell above, "
              "then run this cell again.")
        return False
    try:
        exec(compile(cell, filename, "exec"), namespace)
    except NotImplementedError as e:
        detail = str(e) or "a function is not written yet"
        print(f"✎ {NOT_SOLVED}: {detail}; write it in the cell above, then run this cell again.")
        return False
    return True


def load_ipython_extension(ipython) -> None:
    """``%load_ext llmtrain.coursework`` registers the ``%%check NAME ...`` cell magic."""

    def check(line, cell):
        __tracebackhide__ = True
        run_check(line, cell, ipython.user_ns, ipython.compile.cache(cell))

    ipython.register_magic_function(check, "cell", "check")
