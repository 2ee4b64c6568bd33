"""The spec stage's entry points: a file or text → a validated Spec, or a GanSpec (parse/gan.py)
when the file's top level names a `generator:` (or a `discriminator:`).

    load_spec(path, overrides)      what `check`, `summary` and `draw` read
    resolve_spec(path, overrides)   what `train` reads: shorthands written out and file
                                    references made absolute first, so the Spec (and the
                                    `resolved` tree it carries into the run folder's
                                    spec.yaml) names the same files from any folder

`overrides` are (dotted key, Node) pairs from overrides.py (`--set`, `--data`, `--epochs`).
"""
from __future__ import annotations

import dataclasses

from . import overrides as edits
from ..errors import Problem
from .gan import GanSpec, gan_from_node
from .parser import Spec, from_node
from .source import Node, load, parse_text


def load_spec(path, overrides=()) -> Spec | GanSpec:
    return _parse(load(path), overrides)


def parse_spec(text: str, name: str = "<spec>", overrides=()) -> Spec | GanSpec:
    return _parse(parse_text(text, name), overrides)


def resolve_spec(path, overrides=()) -> Spec | GanSpec:
    """The spec as a run trains it. Relative paths in the file are read from its folder,
    those given on the command line from the working directory."""
    root = load(path)
    edits.expand_shorthands(root)   # so --set train.optimizer.learning_rate=… works on `optimizer: sgd`
    edits.absolute_paths(root)
    overrides = list(overrides or ())
    for dotted, value in overrides:
        edits.absolute_paths(value, tuple(dotted.split(".")))
    return _parse(root, overrides, keep=True)


def with_budget(spec: Spec, max_params=None, max_memory=None) -> Spec:
    """`--max-params` / `--max-memory` over the spec's own `budget:`."""
    if not (max_params or max_memory):
        return spec
    if isinstance(spec, GanSpec):   # each network within it
        return dataclasses.replace(spec, generator=with_budget(spec.generator, max_params, max_memory),
                                   discriminator=with_budget(spec.discriminator, max_params, max_memory))
    changes = {k: v for k, v in (("params", max_params), ("activation_bytes", max_memory)) if v}
    return dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, **changes))


def _parse(root: Node, overrides, keep=False) -> Spec | GanSpec:
    problems: list[Problem] = []
    if root.is_map:
        for dotted, value in overrides or ():
            edits.apply(root, dotted, value, problems)
    if is_gan(root):
        return gan_from_node(root, resolved=root.plain() if keep else None, problems=problems)
    return from_node(root, resolved=root.plain() if keep else None, problems=problems)


def is_gan(root: Node) -> bool:
    """Is this tree a GAN spec: does its top level name a generator or a discriminator?"""
    return root.is_map and ("generator" in root.value or "discriminator" in root.value)
