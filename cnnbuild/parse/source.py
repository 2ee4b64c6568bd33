"""Read spec text into a tree of `Node`s that remember their line and column.

A spec is untrusted input, so this reads YAML without ever constructing Python objects
from tags: it composes the node graph with PyYAML's safe composer, then converts scalars
itself. It refuses what could be used against the machine or that silently loses data:
anchors and aliases (a billion-laughs expansion), duplicate keys (YAML keeps the last
one), non-standard tags, deep nesting, huge integers, huge files, several documents.
Every refusal is a `SpecError` with file:line:column, never a traceback.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import Invalid, Problem, SpecError, UsageError, Where

MAX_BYTES = 1 << 20      # 1 MiB: the largest zoo spec is a few kB
MAX_DEPTH = 64           # nesting levels; the deepest zoo spec uses about 12
MAX_INT_DIGITS = 18      # no dimension or count in a CNN needs more

# YAML 1.1 reads 1e-3 as a string (its float needs a dot); users mean a number.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
# YAML 1.1 reads 010 as octal 8 and 3:30 as base-60 210: silent surprises in a size or count.
_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")
_STANDARD_TAGS = {f"tag:yaml.org,2002:{t}" for t in
                  ("str", "int", "float", "bool", "null", "map", "seq")}


@dataclass
class Node:
    """A YAML value with its position. `value` is a dict of str → Node, a list of Node,
    or a scalar (str, int, float, bool, None). `keys` holds each mapping key's place."""

    value: Any
    where: Where
    keys: dict = field(default_factory=dict)

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def plain(self):
        """The value as plain Python data (dicts, lists, scalars), positions dropped."""
        if self.is_map:
            return {k: v.plain() for k, v in self.value.items()}
        if self.is_list:
            return [v.plain() for v in self.value]
        return self.value

    def key_where(self, key: str) -> Where:
        return self.keys.get(key, self.where)


def plain_to_node(value, where: Where) -> Node:
    """Wrap plain data (from the command line or Python code) as nodes at one place."""
    if isinstance(value, dict):
        return Node({str(k): plain_to_node(v, where) for k, v in value.items()},
                    where, {str(k): where for k in value})
    if isinstance(value, (list, tuple)):
        return Node([plain_to_node(v, where) for v in value], where)
    return Node(value, where)


class _Refused(Exception):
    def __init__(self, mark, message, hint=""):
        self.mark, self.message, self.hint = mark, message, hint


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe composer, with no anchors or aliases and bounded nesting."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(event.start_mark, f"alias '*{event.anchor}' is not allowed",
                           "write the value out in full, or define a reusable block under 'blocks:'")
        if getattr(event, "anchor", None):
            raise _Refused(event.start_mark, f"anchor '&{event.anchor}' is not allowed",
                           "write the value out in full, or define a reusable block under 'blocks:'")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(event.start_mark, f"nesting is deeper than {MAX_DEPTH} levels",
                           "flatten the spec; use 'blocks:' for repeated structure")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_text(path) -> tuple[str, str]:
    """Read a spec file as UTF-8 text. Returns (text, display name). A file that cannot be
    read at all is a UsageError (exit 2); bad content is a SpecError (exit 1)."""
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise UsageError(f"{name}: no such file")
    if p.is_dir():
        raise UsageError(f"{name}: is a directory, not a spec file")
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise SpecError([Problem(Where(name, 1, 1), f"file is {size:,} bytes; a spec may be at most {MAX_BYTES:,}",
                                     "a spec describes a network, not data: keep data in files named under 'data:'")])
        raw = p.read_bytes()
    except OSError as e:
        raise UsageError(f"{name}: cannot be read: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8"), name
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError([Problem(Where(name, line, column), f"byte 0x{raw[e.start]:02x} is not valid UTF-8",
                                 "save the file as UTF-8")]) from None


def parse_text(text: str, name: str = "<spec>") -> Node:
    """Parse spec text into a Node tree, or raise SpecError."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise SpecError([Problem(Where(name, 1, 1), f"spec text is larger than {MAX_BYTES:,} bytes", "a spec describes a network, not data: keep data in files named under 'data:'")])
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
    except _Refused as r:
        raise SpecError([Problem(_where(name, r.mark), r.message, r.hint)]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        message = (e.problem or e.context or "invalid YAML").strip()
        hint = ("check the YAML here: indent with spaces (not tabs), close every bracket and quote, "
                "and put a space after each ':'")
        if "expected a single document" in str(e):
            message, hint = "the file holds several YAML documents", "keep one spec per file (remove '---' separators)"
        raise SpecError([Problem(_where(name, mark), f"invalid YAML: {message}", hint)]) from None
    except yaml.YAMLError as e:
        raise SpecError([Problem(Where(name, 1, 1), f"invalid YAML: {e}", "check the YAML syntax: indentation, colons, brackets and quotes")]) from None
    except (RecursionError, ValueError, MemoryError) as e:  # PyYAML's own limits, not YAMLError
        raise SpecError([Problem(Where(name, 1, 1), f"YAML could not be read: {type(e).__name__}",
                                 "flatten deep nesting and keep numbers short")]) from None
    finally:
        loader.dispose()
    if root is None:
        raise SpecError([Problem(Where(name, 1, 1), "the spec is empty",
                                 "start with 'name:', 'input: [H, W, C]' and 'layers:'")])
    problems: list[Problem] = []
    node = _convert(root, name, "", loader, problems)
    if problems:
        raise SpecError(problems)
    return node


def load(path) -> Node:
    text, name = read_text(path)
    return parse_text(text, name)


def _where(name, mark, path="") -> Where:
    if mark is None:
        return Where(name, 1, 1, path)
    return Where(name, mark.line + 1, mark.column + 1, path)


def _convert(node, name, path, loader, problems) -> Node:
    where = _where(name, node.start_mark, path)
    if node.tag not in _STANDARD_TAGS:
        problems.append(Problem(where, f"tag '{node.tag}' is not allowed",
                                "remove the tag: a spec holds only plain values, lists and mappings"))
        return Node(None, where)
    if isinstance(node, yaml.MappingNode):
        out, keys = {}, {}
        for key_node, value_node in node.value:
            key_where = _where(name, key_node.start_mark, path)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                problems.append(Problem(key_where, f"a key must be a plain word, got {key_node.value!r}"
                                        if isinstance(key_node, yaml.ScalarNode) else "a key must be a plain word",
                                        "write keys as plain words, e.g. 'filters: 6' (quote a key that looks like a number)"))
                continue
            key = key_node.value
            child_path = f"{path}.{key}" if path else key
            if key in out:
                first = keys[key]
                problems.append(Problem(key_where.at(child_path),
                                        f"duplicate key '{key}' (first at line {first.line}, again at line {key_where.line})",
                                        "keep one of them: YAML would silently use the last"))
                continue
            keys[key] = key_where.at(child_path)
            out[key] = _convert(value_node, name, child_path, loader, problems)
        return Node(out, where, keys)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(v, name, f"{path}[{i}]", loader, problems) for i, v in enumerate(node.value)], where)
    try:
        return Node(_scalar(node, loader), where)
    except Invalid as e:
        problems.append(Problem(where, e.message, e.hint))
        return Node(None, where)


def _scalar(node, loader):
    text = node.value
    tag = node.tag
    if tag == "tag:yaml.org,2002:int":
        digits = text.lstrip("+-").replace("_", "")
        if len(digits) > MAX_INT_DIGITS:
            raise Invalid(f"integer with {len(digits)} digits is too large",
                          f"no size or count in a network needs more than {MAX_INT_DIGITS} digits")
        if _OCTAL.match(text):
            decimal = ("-" if text.startswith("-") else "") + (text.lstrip("+-").lstrip("0_").replace("_", "") or "0")
            raise Invalid(f"'{text}' is an octal number in YAML 1.1 ({int(text.replace('_', ''), 8)}), not {decimal}",
                          f"write {decimal}, without the leading zero")
    if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and ":" in text:
        raise Invalid(f"'{text}' is a base-60 number in YAML 1.1 ({loader.construct_object(node, deep=True)})",
                      "write the number itself, or [height, width] for a pair; quote it for text")
    if tag == "tag:yaml.org,2002:str":
        if node.style is None and _EXPONENT_FLOAT.match(text):
            return float(text)
        return text
    try:
        value = loader.construct_object(node, deep=True)
    except (ValueError, OverflowError, yaml.YAMLError) as e:
        raise Invalid(f"cannot read {text!r}: {e}", "write a plain number, word, list or mapping") from None
    if isinstance(value, float) and value != value:
        raise Invalid("NaN is not a valid value", "write a number")
    return value
