"""Changes to a spec's YAML tree before it is parsed: `--set`, `--data` and `--epochs` values,
shorthands written out, and relative file references made absolute.

This is the only place that edits a Node tree. The parser (parser.py) reads the tree it
is given; the stages after it read the Spec and never see YAML.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

from ..errors import Invalid, Problem, SpecError, UsageError, Where
from ..layers import REGISTRY
from ..sources import SOURCES, source_kind
from .sections import expand_shorthand
from .source import Node, parse_text


def setting(key: str, text: str, origin: str = "--set") -> tuple[str, Node]:
    """A command-line `key=value`: the value is read as YAML (numbers, lists) and placed at
    `origin` (e.g. '--set'), so errors in it point at the command line."""
    try:
        node = parse_text(f"v: {text}" if text.strip() else "v: ''", f"{origin} {key}").value["v"]
    except SpecError as e:     # the value's own error, at the key it sets (not the wrapper's 'v')
        raise SpecError([dataclasses.replace(problem, where=Where(origin, 1, 1, key)) for problem in e.problems]) \
            from None
    node.where = Where(origin, 1, 1, key)
    return key, node


def settings(items) -> list[tuple[str, Node]]:
    """`--set dotted.key=value` arguments as (key, Node) pairs."""
    out = []
    for item in items or ():
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected dotted.key=value, e.g. --set train.epochs=3")
        key, text = item.split("=", 1)
        out.append(setting(key, text))
    return out


def given(key: str, value, origin: str) -> tuple[str, Node]:
    """A typed command-line value (`--epochs 3`, `--data folder`) as a (key, Node) pair."""
    return key, Node(value, Where(origin, 1, 1, key))


def apply(root: Node, dotted: str, value: Node, problems: list) -> None:
    """Apply `--set a.b.c=value`. Lists are indexed by number (`layers.0.conv.filters`)."""
    parts = dotted.split(".")
    node = root
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if node.is_map:
            if last:
                node.value[part] = value
                node.keys.setdefault(part, value.where)
                return
            if part not in node.value:
                node.value[part] = Node({}, value.where)
                node.keys[part] = value.where
            node = node.value[part]
        elif node.is_list and part.isdigit() and int(part) < len(node.value):
            if last:
                node.value[int(part)] = value
                return
            node = node.value[int(part)]
        elif node.is_list and part.isdigit():
            count = len(node.value)
            problems.append(Problem(value.where, f"--set {dotted}: '{'.'.join(parts[:i])}' has {count} item"
                                                 f"{'s' if count != 1 else ''}, so there is no {part}",
                                    f"items are numbered from 0: use 0 to {count - 1}" if count else "the list is empty"))
            return
        else:
            problems.append(Problem(value.where, f"--set {dotted}: '{'.'.join(parts[:i])}' is not a mapping or list "
                                                 f"with '{part}'", "check the key path against the spec"))
            return


def expand_shorthands(root: Node, optimizers=()) -> None:
    """Rewrite shorthands in a spec's tree as the mappings they stand for (`data: shapes` →
    `data: {source: shapes}`, `optimizer: sgd` → `optimizer: {name: sgd}`), so that
    `--set train.optimizer.learning_rate=…` finds the key it overrides. `optimizers`: the key
    paths of a family's own optimizer sections (a GAN's `gan.generator_optimizer`, …)."""
    if not root.is_map:
        return
    data = root.value.get("data")
    if data is not None and isinstance(data.value, str):
        root.value["data"] = Node({"source": data}, data.where, {"source": data.where})
    train = root.value.get("train")
    if train is not None and train.is_map:
        for key in ("optimizer", "schedule", "early_stopping"):
            if key in train.value and train.value[key].value is not False:   # `early_stopping: false` stays: off
                train.value[key] = expand_shorthand(train.value[key], key)
    for section, key in optimizers:
        parent = root.value.get(section)
        if parent is not None and parent.is_map and key in parent.value:
            parent.value[key] = expand_shorthand(parent.value[key], "optimizer")


# Keys holding file references, by the mapping they stand in: a data source (`data:` and its
# `validation:`), and a layer kind's arguments that its dataclass marks as files (a backbone's
# `spec` and `weights`, which the kind reads from the folder of the spec naming them).
SOURCE_FILE_KEYS = ("path", "data_dir")


@functools.cache
def layer_file_keys(kind: str) -> tuple:
    """A kind's arguments its dataclass marks as files; asked per kind met, so that reading a
    spec generates only the kinds it uses (fields.record)."""
    return tuple(f.name for f in dataclasses.fields(REGISTRY[kind]) if "file" in f.metadata)


def absolute_paths(node: Node, at: tuple = (), spec_files=()) -> None:
    """Rewrite in place every relative file reference in a spec's tree (or in the part of it
    at key path `at`, such as a `--set` value) as an absolute path: data `path`, `data_dir`
    and a source that is a path, and a layer's file arguments (a backbone's `spec` and
    `weights`), and the key paths in `spec_files` (a family's networks read from spec files of
    their own: a GAN's `generator:` and `discriminator:`). Each is resolved against the folder of the file that wrote it: a spec's own
    folder, or the working directory for `--data` and `--set`. So a spec names the same files from any working
    directory, and the resolved spec a run writes to its folder (spec.yaml) is self-contained.
    Values holding a block parameter (`$name`) are left for the parser to substitute."""
    if node.is_map:
        for key, child in node.value.items():
            absolute_paths(child, at + (key,), spec_files)
    elif node.is_list:
        for index, child in enumerate(node.value):
            absolute_paths(child, at + (str(index),), spec_files)
    elif isinstance(node.value, str) and node.value and "$" not in node.value and (
            at in spec_files or _names_a_file(at, node.value)):
        node.value = _absolute(node.value, node.where.file)


def _names_a_file(at: tuple, value: str) -> bool:
    """Does the string at key path `at` (('data', 'path'), ('layers', '0', 'backbone', 'spec'), …) name a file?"""
    if len(at) >= 2 and at[-2] in REGISTRY and at[-1] in layer_file_keys(at[-2]):
        return True
    if at[:2] == ("data", "validation"):
        key = at[2:]
    elif at[:1] == ("data",):
        key = at[1:]
    else:
        return False
    if key in ((), ("source",)):            # `source: data/flowers`, or the shorthand `data: data/flowers`
        try:
            kind, location = source_kind(value)
        except Invalid:
            return False                    # a misspelt kind: the parser reports it
        return location is not None and SOURCES[kind].takes_path
    return len(key) == 1 and key[0] in SOURCE_FILE_KEYS


def _absolute(value: str, file: str) -> str:
    value = os.path.expanduser(value)
    if os.path.isabs(value):
        return value
    written_in_a_spec = file and not file.startswith(("<", "-"))   # not `<spec>` text, nor `--data` / `--set`
    folder = Path(file).resolve().parent if written_in_a_spec else Path.cwd()
    return os.path.normpath(os.path.join(folder, value))   # not resolve(): a tfrecord glob stays a glob
