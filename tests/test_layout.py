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
    assert {"cnnbuild.families", "cnnbuild.assemble", "cnnbuild.views.draw"} <= edges["cnnbuild.cli"]
    assert "cnnbuild.errors" in edges["cnnbuild.parse.parser"]


def test_a_loop_of_imports_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "modules importing each other in a loop: " + "; ".join(" ↔ ".join(c) for c in found)


def test_stages_import_no_later_stage():
    """YAML → Spec → Report → Keras model → run folder → export: a stage may use the ones
    before it, never one after it. The layer kinds come first: the spec parser reads their
    arguments, the check and the builder call their rules, and they know no stage. The
    drawing and the schema are views of a spec and its report."""
    order = {"layers": 0, "parse": 1, "check": 2, "assemble": 3, "views": 3, "train": 4, "serve": 5, "families": 6}
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


def test_functions_in_the_training_session_stay_short():
    """The one training session reads top to bottom: no function in train/ over 80 lines."""
    long = []
    for path in (PACKAGE / "train").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert not long, "over 80 lines: " + ", ".join(long)


def family_knowledge(tree, spec_types, marks, run_files) -> list:
    """Where a module's syntax tells families apart: it imports a family's own module, names
    a family's spec class, or compares a value with a family's top-level keys or run files."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = ("." * node.level) + (node.module or "")
            rows = {alias.name for alias in node.names} - {"families", "of_spec", "of_run", "of_tree", "for_verb",
                                                             "FAMILIES", "DEFAULT", "load_spec", "parse_spec",
                                                             "resolve_spec", "spec_schema", "checked_for_training"}
            if "families." in module or (module.endswith("families") and rows):
                found.append(f"line {node.lineno}: imports {module}")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names if "families." in a.name]
        elif isinstance(node, ast.Name) and node.id in spec_types:
            found.append(f"line {node.lineno}: names {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in spec_types:
            found.append(f"line {node.lineno}: names {node.attr}")
        elif isinstance(node, ast.Compare):
            for value in ast.walk(node):
                if isinstance(value, ast.Constant) and (value.value in marks or value.value in run_files):
                    found.append(f"line {node.lineno}: compares with {value.value!r}")
        elif isinstance(node, ast.Constant) and node.value in run_files:
            found.append(f"line {node.lineno}: names the run file {node.value!r}")
    return found


def test_only_the_families_table_tells_families_apart():
    """No module outside cnnbuild/families/ tests a spec's (or a run's) family: none imports a
    family's own module (the table, cnnbuild.families, is asked instead), names a family's
    spec class, or compares with the top-level keys or the run files that mark a family."""
    from cnnbuild import families
    spec_types = {f.spec_type.__name__ for f in families.FAMILIES if f is not families.DEFAULT}
    marks = {mark for f in families.FAMILIES for mark in f.marks}
    run_files = {"gan.json"}
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "families":
            continue
        found = family_knowledge(ast.parse(path.read_text(encoding="utf-8")), spec_types, marks, run_files)
        wrong += [f"{path.relative_to(PACKAGE.parent)} {where}" for where in found]
    assert not wrong, "family knowledge outside the families table: " + "; ".join(wrong)


def test_the_family_check_sees_family_knowledge():
    code = ("from ..families.gan.spec import GanSpec\n"
            "def f(spec, root):\n    return isinstance(spec, GanSpec) or 'generator' in root.value\n")
    found = family_knowledge(ast.parse(code), {"GanSpec"}, {"generator"}, {"gan.json"})
    assert len(found) == 3 and "imports ..families.gan.spec" in found[0]
    assert family_knowledge(ast.parse("from . import families\nfamilies.of_spec(1)\n"), {"GanSpec"}, set(), set()) == []
