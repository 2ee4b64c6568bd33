"""User blocks (`blocks:`) and the substitution of their parameters.

A block is a named layer list with parameters; each use (`- basic: {filters: 64}`) is the
list again with `$filters` and `${…}` replaced by the use's values, parsed in a scope of its
own (parse/parser.py). A repeated list is substituted the same way, with `$index` = 1, 2, ….

A parameter's value may be any YAML value (a number, a word, a list such as `kernel: [1, 7]`,
a mapping); where `$name` stands as a whole value (an argument, a list entry, an `inputs:`
entry) it becomes that value. A default may use the parameters before it:
`pad: "${(kernel - 1) // 2}"`. A block may declare `inputs: [p, x]`: a use then reads as
many inputs (`inputs: [previous_cell, cell_3]`), known inside the block by those names.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

from ..errors import Invalid, Problem, Where
from ..layers import REGISTRY
from .expr import substitute
from .names import NAME
from .source import Node, plain_to_node
from .values import did_you_mean

INDEX = "index"        # a repeated list's `$index`; no block parameter may take the name
BLOCK_KEYS = ("params", "layers", "description", "inputs")
MAX_BLOCK_INPUTS = 16


@dataclass
class Block:
    params: dict          # name → default Node, or None when required
    layers: Node
    where: Where
    inputs: tuple = ("input",)   # the names its inputs have inside it, in the order a use lists them


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
        inputs = _inputs(name, body.value.get("inputs"), params, problems)
        if inputs is None:
            continue
        blocks[name] = Block(params, layers, where, inputs)
    return blocks


def _inputs(block: str, node: Optional[Node], params: dict, problems: list) -> Optional[tuple]:
    """A block's declared input names (`inputs: [p, x]`), or ('input',) when it has none."""
    if node is None:
        return ("input",)
    names = node.value if node.is_list else None
    if not names or not all(isinstance(n.value, str) for n in names) or len(names) > MAX_BLOCK_INPUTS:
        problems.append(Problem(node.where, f"block '{block}': 'inputs' must list 1 to {MAX_BLOCK_INPUTS} names its inputs have inside it",
                                "e.g. inputs: [previous, current]; a use then gives `inputs: [a, b]`"))
        return None
    words = [n.value for n in names]
    for n in names:
        if not NAME.match(n.value) or n.value in params or words.count(n.value) > 1:
            problems.append(Problem(n.where, f"block '{block}': input name '{n.value}' must be a name used once, and not a parameter's",
                                    "use letters, digits and _, starting with a letter, e.g. inputs: [previous, current]"))
            return None
    return tuple(words)


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
        # any YAML value: a number, a word, a list, a mapping; `${…}` of numbers alone is worked out
        # here (`filters: "${make_divisible(32 * 0.75, 8)}"` at the top level, outside any block)
        given = substituted(value, {}, problems, keep=(INDEX,))
        if given is None:
            ok, values[key] = False, None    # reported; not "missing" as well
            continue
        values[key] = given.plain()
    for name, default in block.params.items():
        if name in values:
            continue
        if default is None:
            problems.append(Problem(args_node.where, f"block '{kind}' needs parameter '{name}'", f"add '{name}: …'"))
            ok = False
            continue
        # a default may use the parameters before it (and any given): pad: "${(kernel - 1) // 2}"
        earlier = {k: v for k, v in values.items() if k in block.params}
        resolved = substituted(default, earlier, problems, keep=(INDEX,))
        if resolved is None:
            ok = False
            continue
        values[name] = resolved.plain()
    return values if ok else None


def frozen(value):
    """A parameter's value as hashable data (lists → tuples, mappings → sorted pairs), for
    the frozen BlockUse that records what a block was used with."""
    if isinstance(value, list):
        return tuple(frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, frozen(v)) for k, v in value.items()))
    return value


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
                value = substitute(n.value, values, keep)
                # a list or mapping given for `$name` becomes nodes at the place `$name` stood
                return plain_to_node(value, n.where) if isinstance(value, (list, dict)) else Node(value, n.where)
            except Invalid as e:
                problems.append(Problem(n.where, e.message, e.hint))
        return copy.copy(n)
    out = walk(node)
    return out if len(problems) == before else None


class BlockHits:
    """Which uses of a block ran into each problem found inside it, so that a typo in a block
    used seven times is said once, with the seven uses listed."""

    def __init__(self):
        self.hits: dict = {}   # problem → (the innermost block it is in, its uses: "'b2' (line 14)")

    def add(self, kind: str, name: str, where: Where, problems) -> None:
        """The use `name` (at `where`) of block `kind` ran into `problems`."""
        for problem in problems:
            block, uses = self.hits.setdefault(problem, (kind, []))
            if block == kind:
                uses.append(f"'{name}' (line {where.line})")

    def merged(self, problems) -> list:
        """The problems, each once; one hit by several uses of a block says which."""
        out = []
        for problem in dict.fromkeys(problems):
            block, uses = self.hits.get(problem, ("", []))
            if len(uses) > 1:
                listed = ", ".join(uses[:8]) + (f" and {len(uses) - 8} more" if len(uses) > 8 else "")
                problem = Problem(problem.where, f"{problem.message} (in block '{block}', in {len(uses)} uses: {listed})",
                                  problem.hint, problem.layer)
            out.append(problem)
        return out
