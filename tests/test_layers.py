"""The library's map: every import goes down a layer, none closes a cycle.

Layers, from the bottom: core <- world <- the stages of the pipeline (pretrain,
data, align, compress, scale) <- viz <- course. A module may import its own
layer and the layers below it; function-level imports count too, since they
are imports all the same (a cycle hidden inside a function is still a cycle).
The three top-level modules (``__init__``, ``__main__``, and ``coursework``,
the stable ``%load_ext`` name) are entry points above every layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "llmtrain"
RANK = {"core": 0, "world": 1, "pretrain": 2, "data": 2, "align": 2, "compress": 2, "scale": 2,
        "viz": 3, "course": 4}
ENTRY_RANK = 5
MAX_LINES = 500  # longer modules must say why in their docstring ("Why one module")


def module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every llmtrain module ``name`` imports, at any depth of the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            targets = [root] + [f"{root}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t.startswith("llmtrain"):
                while t and t not in known:   # "llmtrain.core.model.GPT" -> the module
                    t = t.rpartition(".")[0]
                if t and t != name:
                    found.add(t)
    return found


def rank(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1                           # the package itself: its __init__ imports nothing
    return RANK.get(parts[1], ENTRY_RANK) if parts[1] in RANK else ENTRY_RANK


def graph() -> dict[str, set[str]]:
    mods = all_modules()
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    return [f"{a} (layer {rank(a)}) imports {b} (layer {rank(b)})"
            for a, targets in sorted(g.items()) for b in sorted(targets) if rank(b) > rank(a)]


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def package_graph(g: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between subpackages (the stages must not lean on each other in a loop)."""
    pkg = {m: ".".join(m.split(".")[:2]) for m in g}
    out: dict[str, set[str]] = {}
    for a, targets in g.items():
        out.setdefault(pkg[a], set()).update(pkg[b] for b in targets if pkg[b] != pkg[a])
    return out


def test_the_checks_can_fail():
    fake = {"llmtrain.core.model": {"llmtrain.viz.plots"}, "llmtrain.viz.plots": set()}
    assert upward_imports(fake) == ["llmtrain.core.model (layer 0) imports llmtrain.viz.plots "
                                    "(layer 3)"]
    loop = {"llmtrain.align.a": {"llmtrain.align.b"}, "llmtrain.align.b": {"llmtrain.align.a"}}
    assert find_cycle(loop) == ["llmtrain.align.a", "llmtrain.align.b", "llmtrain.align.a"]
    src = LIB / "course" / "runner.py"
    assert "llmtrain.course.paths" in imports_of("llmtrain.course.runner", src,
                                                   set(all_modules()))


def test_every_module_is_in_a_layer():
    for m in all_modules():
        parts = m.split(".")
        assert len(parts) <= 3, f"{m}: the library is two levels deep (llmtrain.LAYER.module)"
        if len(parts) == 2:
            assert parts[1] in RANK or parts[1] in ("__main__", "coursework"), (
                f"{m} sits at the top of llmtrain: put it in one of {sorted(RANK)}")


def test_no_import_goes_up_a_layer():
    assert upward_imports(graph()) == []


def test_no_import_cycles_between_modules_or_packages():
    g = graph()
    assert find_cycle(g) is None, f"import cycle: {' -> '.join(find_cycle(g))}"
    pg = package_graph(g)
    assert find_cycle(pg) is None, f"package cycle: {' -> '.join(find_cycle(pg))}"


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: module_name(p))
def test_modules_are_documented_and_long_ones_say_why(path):
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree)
    assert doc, f"{path.relative_to(LIB)} needs a docstring saying what lives there"
    lines = len(path.read_text().splitlines())
    if lines > MAX_LINES + 20:
        assert "Why one module" in doc, (
            f"{path.relative_to(LIB)} has {lines} lines: split it, or say in its docstring "
            "why it is one module ('Why one module: ...')")


def test_private_names_stay_in_their_module():
    for path in LIB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            ours = isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("llmtrain"))
            if ours:
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.relative_to(LIB)} imports private {private}"
