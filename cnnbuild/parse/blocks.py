"""User blocks (`blocks:`) and the substitution of their parameters.

A block is a named layer list with parameters; each use (`- basic: {filters: 64}`) is the
list again with `$filters` and `${…}` replaced by the use's values, parsed in a scope of its
own (parse/parser.py). A repeated list is substituted the same way, with `$index` = 1, 2, ….
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

from ..errors import Invalid, Problem, Where
from ..layers import REGISTRY
from .expr import substitute
from .names import NAME
from .source import Node
from .values import did_you_mean

INDEX = "index"        # a repeated list's `$index`; no block parameter may take the name
BLOCK_KEYS = ("params", "layers", "description")


@dataclass
class Block:
    params: dict          # name → default Node, or None when required
    layers: Node
    where: Where


def parse_blocks(node: Optional[Node], problems: list) -> dict:
    """The `blocks:` mapping: block name → Block."""
    if node is None:
        return {}
    if not node.is_map:
        problems.append(Problem(node.where, "'blocks' must map block names to {params, layers}", "e.g. blocks: {basic: {params: {filters: required}, layers: [...]}}"))
        return {}
    blocks = {}
    for name, body in node.value.items():
        where = node.key_where(name)
        if name in REGISTRY:
            problems.append(Problem(where, f"block name '{name}' is a built-in kind", f"rename it, e.g. '{name}_block'"))
            continue
        if not NAME.match(name):
            problems.append(Problem(where, f"block name '{name}' must start with a letter and use letters, digits and _", "e.g. basic_block"))
            continue
        if not body.is_map:
            problems.append(Problem(body.where, f"block '{name}' must have 'layers:' (and optionally 'params:')", f"e.g. {name}: {{params: {{filters: required}}, layers: [...]}}"))
            continue
        for key in body.value:
            if key not in BLOCK_KEYS:
                problems.append(Problem(body.key_where(key), f"unknown key '{key}' in block '{name}'", did_you_mean(key, BLOCK_KEYS)))
        params = _params(body.value.get("params"), problems)
        layers = body.value.get("layers")
        if layers is None or not layers.is_list or not layers.value:
            problems.append(Problem(body.where, f"block '{name}' needs a non-empty 'layers:' list", "e.g. layers: [{conv: {filters: 8, kernel: 3}}]"))
            continue
        blocks[name] = Block(params, layers, where)
    return blocks


def _params(node: Optional[Node], problems: list) -> dict:
    params = {}
    if node is None:
        return params
    if not node.is_map:
        problems.append(Problem(node.where, "'params' must map names to defaults (or 'required')", "e.g. params: {filters: required, stride: 1}"))
        return params
    for name, default in node.value.items():
        if not NAME.match(name) or name == INDEX:
            problems.append(Problem(node.key_where(name), f"parameter name '{name}' is not allowed",
                                    f"use letters, digits and _, starting with a letter ('{INDEX}' is repeat's)"))
        params[name] = None if default.value == "required" else default
    return params


def use_values(kind: str, block: Block, args_node: Node, skip, problems: list) -> Optional[dict]:
    """A block use's parameter values (given, else the defaults), or None after a problem.
    Keys in `skip` (name, inputs, …) are the layer's own, not parameters."""
    values, ok = {}, True
    for key, value in args_node.value.items():
        if key in skip:
            continue
        if key not in block.params:
            problems.append(Problem(args_node.key_where(key), f"block '{kind}' has no parameter '{key}'",
                                    did_you_mean(key, block.params) if block.params else "this block takes no parameters"))
            ok = False
            continue
        if not (value.value is None or isinstance(value.value, (int, float, str, bool))):
            problems.append(Problem(value.where, f"parameter '{key}' must be a single value", "give a number, a word, true/false or null"))
            ok = False
        values[key] = value.value
    for name, default in block.params.items():
        if name not in values:
            if default is None:
                problems.append(Problem(args_node.where, f"block '{kind}' needs parameter '{name}'", f"add '{name}: …'"))
                ok = False
            else:
                values[name] = default.value
    return values if ok else None


def substituted(node: Node, values: dict, problems: list, keep) -> Optional[Node]:
    """A deep copy of `node` with `$name` and `${expr}` replaced by the use's values; names
    in `keep` are left for a later substitution (a block's `$index`, for the repeat in it)."""
    before = len(problems)

    def walk(n: Node) -> Node:
        if n.is_map:
            return Node({k: walk(v) for k, v in n.value.items()}, n.where, dict(n.keys))
        if n.is_list:
            return Node([walk(v) for v in n.value], n.where)
        if isinstance(n.value, str) and "$" in n.value:
            try:
                return Node(substitute(n.value, values, keep), n.where)
            except Invalid as e:
                problems.append(Problem(n.where, e.message, e.hint))
        return copy.copy(n)
    out = walk(node)
    return out if len(problems) == before else None
