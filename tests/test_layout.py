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
    before it, never one after it. The layer kinds and the data sources come first: the spec
    parser reads their arguments and rules, the check and the builder call them, and they
    know no stage. The
    drawing and the schema are views of a spec and its report."""
    order = {"layers": 0, "sources": 0, "parse": 1, "check": 2, "assemble": 3, "views": 3, "train": 4, "serve": 5,
             "families": 6, "choose": 7}
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
                                                             "resolve_spec", "spec_schema", "checked_for_training",
                                                             "search_space"}
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


def kind_mentions(source: str, kinds: set) -> list[str]:
    """'line: name' for each string constant of `source` equal to a layer kind's name where
    code uses it as a kind: compared (==, !=, in, not in; alone, or inside the tuple, list or
    set compared against), a key or a value of a dict literal, or in a tuple, list or set
    literal of two or more strings (a list of kinds)."""
    found = []

    def named(nodes):
        return [n for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in kinds]

    for node in ast.walk(ast.parse(source)):
        hits = []
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                hits += named(operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand])
        elif isinstance(node, ast.Dict):
            hits = named(node.keys) + named(node.values)
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            strings = [n for n in node.elts if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            hits = named(strings) if len(strings) >= 2 else []
        found += [f"{hit.lineno}: {hit.value}" for hit in hits]
    return sorted(set(found), key=lambda text: int(text.split(":")[0]))


def kind_names() -> set:
    """The registered kinds' names, less the activation functions': 'tanh' or 'softmax' is a
    kind (`- tanh`) and also a value of every `activation:` argument and of the check's
    `output_activation`, and code comparing those values (a GAN's pixel range by its
    activation) is about the function, not the kind."""
    import typing

    from cnnbuild.layers import REGISTRY
    from cnnbuild.layers.base import Activation
    return set(REGISTRY) - set(typing.get_args(Activation))


def test_the_kind_reader_sees_comparisons_dicts_and_lists():
    kinds = {"dense", "upsample", "conv"}
    source = ('if layer.kind == "dense": pass\nx = kind in ("upsample", "pool")\nTABLE = {"linear": "dense"}\n'
              'KINDS = ("conv", "flatten")\nprint("dense", f"{kind}")\nname = "conv"\n')
    assert kind_mentions(source, kinds) == ["1: dense", "2: upsample", "3: dense", "4: conv"]


def test_no_module_outside_layers_names_a_kind():
    """What a kind is, keeps, ends in or is called is asked of the kind (layers/base.py's
    facts): no module outside cnnbuild/layers/ tests a layer for a kind by its name or lists
    kinds."""
    kinds, found = kind_names(), []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "layers":
            continue
        found += [f"{path.relative_to(PACKAGE.parent)}:{hit}" for hit in kind_mentions(path.read_text(encoding="utf-8"), kinds)]
    assert not found, "kinds named outside layers/: " + ", ".join(found)
