"""The package's shape: stages import only earlier stages, and no module imports itself
round a loop. Imports are read with `ast`, inside functions too (a lazy import is still a
dependency), so the graph is the code's own, not a test's idea of it."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cnnbuild"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(path: Path, known: dict) -> set[str]:
    """The cnnbuild modules a file imports, wherever in the file the import stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "cnnbuild")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cnnbuild":
                continue
            for alias in node.names:   # `from . import runfolder` imports a module, not a name of the package's
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def test_the_graph_reader_sees_lazy_and_relative_imports():
    edges = graph()
    # cli.py imports each stage inside the function of its command
    assert {"cnnbuild.train.run", "cnnbuild.serve.export", "cnnbuild.views.draw"} <= edges["cnnbuild.cli"]
    assert "cnnbuild.errors" in edges["cnnbuild.parse.parser"]


def test_a_loop_of_imports_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "modules importing each other in a loop: " + "; ".join(" ↔ ".join(c) for c in found)


def test_stages_import_no_later_stage():
    """YAML → Spec → Report → Keras model → run folder → export: a stage may use the ones
    before it, never one after it. The layer kinds and the data sources come first: the spec
    parser reads their arguments and rules, the check and the builder call them, and they
    know no stage. The
    drawing and the schema are views of a spec and its report."""
    order = {"layers": 0, "sources": 0, "parse": 1, "check": 2, "assemble": 3, "views": 3, "train": 4, "serve": 5}
    wrong = []
    for module, targets in graph().items():
        stage = module.split(".")[1] if module.count(".") else ""
        if stage not in order:
            continue
        for target in targets:
            other = target.split(".")[1] if target.count(".") else ""
            if other in order and other != stage and order[other] > order[stage]:
                wrong.append(f"{module} → {target}")
    assert not wrong, "a stage reaching forward: " + ", ".join(sorted(wrong))


def test_classes_and_functions_stay_readable():
    """Plain code a newcomer can read: no class over 300 lines, no function over 150."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > (300 if isinstance(node, ast.ClassDef) else 150):
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "too long to read at once: " + ", ".join(long)
