"""The spec stage's entry points: a file or text → a located YAML tree, the command line's
edits applied → a validated spec, by the parser its family names (cnnbuild/families/: a
classifier's is parser.py's `from_node`, a GAN's its own).

    read_tree(path), text_tree(text)      the YAML as a tree of located Nodes
    resolved_tree(path, overrides, …)     what `train` reads: shorthands written out and file
                                          references made absolute first, so the spec (and the
                                          `resolved` tree it carries into the run folder's
                                          spec.yaml) names the same files from any folder
    parse_tree(root, overrides, parse)    overrides applied, then the family's parser

`overrides` are (dotted key, Node) pairs from overrides.py (`--set`, `--data`, `--epochs`).
`load_spec` / `parse_spec` here read a classifier's spec; cnnbuild.load_spec (the families
table) reads a spec of any family.
"""
from __future__ import annotations

import dataclasses

from . import overrides as edits
from ..errors import Problem, SpecError
from .params import apply_params, split_settings
from .parser import Spec, from_node
from .source import Node, load, parse_text


def read_tree(path) -> Node:
    return load(path)


def text_tree(text: str, name: str = "<spec>") -> Node:
    return parse_text(text, name)


def resolved_tree(path, overrides=(), optimizers=(), spec_files=()) -> tuple:
    """(tree, overrides) as a run trains them. Relative paths in the file are read from its
    folder, those given on the command line from the working directory. `optimizers` and
    `spec_files`: a family's own optimizer sections and network files (overrides.py)."""
    root = load(path)
    edits.expand_shorthands(root, optimizers)   # so --set train.optimizer.learning_rate=… works on `optimizer: sgd`
    edits.absolute_paths(root, spec_files=spec_files)
    overrides = list(overrides or ())
    for dotted, value in overrides:
        edits.absolute_paths(value, tuple(dotted.split(".")), spec_files)
    return root, overrides


def parse_tree(root: Node, overrides, parse=from_node, keep: bool = False, variant=None):
    """The overrides applied to `root`, its parameters written in (params.py: `variant` and
    `--set NAME=VALUE` choose their values), then `parse(root, resolved=…, problems=…)`: a
    spec, or SpecError with every problem. `keep`: the spec carries the tree as parsed
    (`resolved`, with the parameters' values); the spec records the values it was read with."""
    problems: list[Problem] = []
    settings, overrides = split_settings(root, overrides or (), problems)
    if root.is_map:
        for dotted, value in overrides:
            edits.apply(root, dotted, value, problems)
    before = len(problems)
    tree, chosen, recorded = apply_params(root, variant, settings, problems)
    if len(problems) > before:    # the parser would only trip over the `$name`s left in
        raise SpecError(problems)
    resolved = (recorded if recorded is not None else root.plain()) if keep else None
    spec = parse(tree, resolved=resolved, problems=problems)
    if chosen.values or chosen.variant:
        spec = dataclasses.replace(spec, params=chosen.values, variant=chosen.variant)
    return spec


def load_spec(path, overrides=(), variant=None) -> Spec:
    """A classifier's spec file → Spec (cnnbuild.load_spec reads any family's)."""
    return parse_tree(read_tree(path), overrides, variant=variant)


def parse_spec(text: str, name: str = "<spec>", overrides=(), variant=None) -> Spec:
    return parse_tree(text_tree(text, name), overrides, variant=variant)


def with_budget(spec: Spec, max_params=None, max_memory=None) -> Spec:
    """`--max-params` / `--max-memory` over the spec's own `budget:`."""
    if not (max_params or max_memory):
        return spec
    changes = {k: v for k, v in (("params", max_params), ("activation_bytes", max_memory)) if v}
    return dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, **changes))
