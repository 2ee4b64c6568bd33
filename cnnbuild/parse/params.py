"""Spec parameters: a top-level `params:` (as a block's), named `variants:` of their values,
and `--set NAME=VALUE`, written into the spec's tree before its family's parser reads it.

    params: {depth: 1.0, width: 1.0, resolution: 224, dropout: "${0.2 * width}"}
    variants:
      small: {width: 0.5, resolution: 96}
      large: {width: 2.0, depth: 2.0, resolution: 320}
    input: [$resolution, $resolution, 3]

A parameter's value is, in this order of precedence: `--set NAME=VALUE`, the chosen
variant's, its default (which may use the parameters before it). Every `$name` and `${…}`
in the spec but in `description` is then replaced, blocks included (inside a block, its own
parameters of the same name win); what is left is a repeat's `$index` and the incoming
tensor's shape (`${in.channels}`), for the parser and the check. The run folder's spec.yaml
records the values used: `params:` holding them, without `variants:`, so it reads back the same.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from typing import Optional

from ..errors import Problem, Where
from .blocks import INDEX, _params, substituted
from .source import Node
from .values import did_you_mean

NOT_SUBSTITUTED = ("params", "variants", "blocks", "description")   # each read on its own below, or free text


@dataclass(frozen=True)
class Chosen:
    """The parameter values a spec was read with (in the order declared), and the variant named."""

    values: tuple = ()      # (name, plain value) pairs
    variant: Optional[str] = None

    def as_dict(self) -> dict:
        return dict(self.values)


def declared(root: Node) -> dict:
    """The top-level parameters' names → default Node (None: required); {} without `params:`."""
    node = root.value.get("params") if root.is_map else None
    return _params(node, []) if node is not None and node.is_map else {}


def split_settings(root: Node, overrides, problems: list) -> tuple:
    """(parameter settings, other overrides): a `--set NAME=VALUE` whose NAME (no dots) is a
    declared parameter sets the parameter; everything else edits the tree as before, but a
    NAME that is no key of the spec and looks like a parameter's is refused with its name."""
    names = declared(root)
    mine, others = [], []
    for key, value in overrides:
        if "." not in key and key in names:
            mine.append((key, value))
        elif "." not in key and names and key not in root.value and difflib.get_close_matches(key, list(names), 1, 0.6):
            problems.append(Problem(value.where, f"--set {key}: the spec has no parameter '{key}'",
                                    f"{did_you_mean(key, names)} (its parameters: {', '.join(names)})"))
        else:
            others.append((key, value))
    return mine, others


def apply_params(root: Node, variant: Optional[str], settings, problems: list) -> tuple:
    """(the tree with parameters written in, Chosen, the tree as spec.yaml records it).
    Without `params:` (and no variant asked for) the tree is returned as it is."""
    if not root.is_map or ("params" not in root.value and "variants" not in root.value and variant is None):
        return root, Chosen(), None
    top = root.value
    params_node = top.get("params")
    params = _params(params_node, problems) if params_node is not None else {}
    given = dict(_variant(top.get("variants"), variant, params, problems))
    for key, value in settings:
        given[key] = value
    values, ok = {}, True
    for name, default in params.items():
        node = given.get(name, default)
        if node is None:
            problems.append(Problem(params_node.key_where(name), f"parameter '{name}' is required and has no value",
                                    f"give it in a variant, or on the command line: --set {name}=…"))
            ok = False
            continue
        value = substituted(node, dict(values), problems, keep=())
        if value is None:
            ok = False
            continue
        values[name] = value.plain()
    if not ok:
        return root, Chosen(tuple(values.items()), variant), None
    out = Node(dict(top), root.where, dict(root.keys))
    for key, child in top.items():
        if key in NOT_SUBSTITUTED:
            continue
        out.value[key] = substituted(child, values, problems, keep=(INDEX,)) or child
    if "blocks" in top and top["blocks"].is_map:
        out.value["blocks"] = Node({name: _block(body, values, problems) for name, body in top["blocks"].value.items()},
                                   top["blocks"].where, dict(top["blocks"].keys))
    recorded = {key: copy.deepcopy(child.plain()) for key, child in top.items() if key != "variants"}
    if params:
        recorded["params"] = dict(values)
    return out, Chosen(tuple(values.items()), variant), recorded


class _Others:
    """Every name but the spec's parameters: inside a block, a name that is not the spec's is
    left for the block's own pass (its parameters, `$index`), which reports it if unknown there."""

    def __init__(self, values):
        self.values = values

    def __contains__(self, name):
        return name not in self.values

    def __iter__(self):
        return iter(())


def _block(body: Node, values: dict, problems: list) -> Node:
    """A block with the spec's parameters written in, but those it declares itself (its own win)."""
    own = _params(body.value.get("params"), []) if body.is_map and body.value.get("params") is not None \
        and body.value["params"].is_map else {}
    outer = {k: v for k, v in values.items() if k not in own}
    return substituted(body, outer, problems, keep=_Others(outer)) or body


def _variant(node: Optional[Node], name: Optional[str], params: dict, problems: list) -> dict:
    """The chosen variant's values (name → Node); every variant's names are checked."""
    variants = {}
    if node is not None:
        if not node.is_map:
            problems.append(Problem(node.where, "'variants' must map variant names to parameter values",
                                    "e.g. variants: {small: {width: 0.5}, large: {width: 2.0}}"))
        else:
            for variant, body in node.value.items():
                if not body.is_map:
                    problems.append(Problem(body.where, f"variant '{variant}' must map parameter names to values",
                                            f"e.g. {variant}: {{{next(iter(params), 'width')}: …}}"))
                    continue
                for key in body.value:
                    if key not in params:
                        problems.append(Problem(body.key_where(key), f"variant '{variant}' sets '{key}', which is not "
                                                "a parameter of the spec", did_you_mean(key, params) if params
                                                else "declare it under the top-level params:"))
                variants[variant] = {k: v for k, v in body.value.items() if k in params}
    if name is None:
        return {}
    if name not in variants:
        where = Where("--variant", 1, 1, name)
        hint = (did_you_mean(name, variants) if variants else
                "the spec has no variants: declare some under the top-level variants:")
        problems.append(Problem(where, f"no variant '{name}' in the spec" + (f" (its variants: {', '.join(variants)})"
                                                                             if variants else ""), hint))
        return {}
    return variants[name]
