"""Read spec text into a tree of `Node`s that remember their line and column.

A spec is untrusted input, so this reads YAML without ever constructing Python objects
from tags: it takes the events of PyYAML's parser (libyaml's, in C, when available) and
composes the Node tree itself, converting scalars as it goes. It refuses what could be used against the machine or that silently loses data:
anchors and aliases (a billion-laughs expansion), duplicate keys (YAML keeps the last
one), non-standard tags, deep nesting, huge integers, huge files, several documents.
Every refusal is a `SpecError` with file:line:column, never a traceback.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import Invalid, Problem, SpecError, UsageError, Where

MAX_BYTES = 1 << 20      # 1 MiB: the largest zoo spec is a few kB
MAX_DEPTH = 64           # nesting levels; the deepest zoo spec uses about 12
MAX_INT_DIGITS = 18      # no dimension or count in a CNN needs more
MAX_VALUES = 100_000     # scalars, lists, mappings and keys; a 5,000-layer spec holds about 25,000
MAX_PROBLEMS = 100       # found while reading the YAML (duplicate keys, bad numbers …): then reading stops

# YAML 1.1 reads 1e-3 as a string (its float needs a dot); users mean a number.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+$")   # linear: no nested \d+\d*
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


# libyaml's event parser (C) when PyYAML was built with it, else PyYAML's own (Python): the
# same events with the same line and column marks. Only events are taken from it; the tree is
# composed here, so anchors, aliases, tags and depth are seen before anything is built.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONSTRUCT = yaml.SafeLoader.yaml_constructors   # tag → SafeConstructor's method, for int, float, bool, null
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class _Composer:
    """Spec text → Node tree, straight from the parser's events; problems in the values
    (tags, keys, duplicates, numbers) are collected, refusals of the text itself raised."""

    def __init__(self, text: str, name: str):
        self.name = name
        self.problems: list[Problem] = []
        self.tags: dict = {}      # (text, implicit) → tag, and (text, tag, plain) → value: a spec repeats its
        self.values: dict = {}    # words and numbers, and scalars are immutable
        self.count = 0            # values read so far (each scalar, list, mapping and key)
        self.loader = _LOADER(text)

    def root(self):
        loader = self.loader
        loader.get_event()                           # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()                           # document start
        node = self.node("", 0)
        loader.get_event()                           # document end
        if not loader.check_event(yaml.StreamEndEvent):
            raise _Refused(loader.peek_event().start_mark, "the file holds several YAML documents",
                           "keep one spec per file (remove '---' separators)")
        return node

    def node(self, path: str, depth: int) -> Node:
        event = self.loader.get_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(event.start_mark, f"alias '*{event.anchor}' is not allowed",
                           "write the value out in full, or define a reusable block under 'blocks:'")
        if event.anchor:
            raise _Refused(event.start_mark, f"anchor '&{event.anchor}' is not allowed",
                           "write the value out in full, or define a reusable block under 'blocks:'")
        if depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"nesting is deeper than {MAX_DEPTH} levels",
                           "flatten the spec; use 'blocks:' for repeated structure")
        self.count += 1
        if self.count > MAX_VALUES:
            raise _Refused(event.start_mark, f"the spec holds more than {MAX_VALUES:,} values",
                           "a spec describes a network: use repeat and blocks for repeated layers, "
                           "and keep data in files named under 'data:'")
        where = _where(self.name, event.start_mark, path)
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = self.tag(event.value, event.implicit)
            if tag not in _STANDARD_TAGS:
                return self.refuse_tag(where, tag)
            known = (event.value, tag, not event.style)
            if known in self.values:
                return Node(self.values[known], where)
            try:
                value = self.values[known] = _scalar(event.value, tag, event.style)
                return Node(value, where)
            except Invalid as e:
                self.problems.append(Problem(where, e.message, e.hint))
                if len(self.problems) >= MAX_PROBLEMS:
                    raise _Refused(event.start_mark, f"more than {MAX_PROBLEMS} problems; reading stopped here",
                                   "fix the ones listed and check again")
                return Node(None, where)
        tag = event.tag
        if tag is None or tag == "!":
            tag = "tag:yaml.org,2002:map" if isinstance(event, yaml.MappingStartEvent) else "tag:yaml.org,2002:seq"
        if tag not in _STANDARD_TAGS:    # read to its end, only to say the tag is refused
            kept = len(self.problems)
            self.rest(event, path, depth)
            del self.problems[kept:]
            return self.refuse_tag(where, tag)
        return self.rest(event, path, depth, where)

    def rest(self, event, path: str, depth: int, where=None):
        """The list or mapping that `event` starts, read to its end."""
        if isinstance(event, yaml.SequenceStartEvent):
            items = []
            while not self.loader.check_event(yaml.SequenceEndEvent):
                items.append(self.node(f"{path}[{len(items)}]", depth + 1))
            self.loader.get_event()
            return Node(items, where)
        out, keys = {}, {}
        while not self.loader.check_event(yaml.MappingEndEvent):
            key_event = self.loader.peek_event()
            key_where = _where(self.name, key_event.start_mark, path)
            key = self.key(depth + 1)
            if key is None:
                kept = len(self.problems)
                self.node(path, depth + 1)           # the value of a key refused: nothing more to say about it
                del self.problems[kept:]
                self.problems.append(Problem(key_where, f"a key must be a plain word, got {key_event.value!r}"
                                             if isinstance(key_event, yaml.ScalarEvent) else "a key must be a plain word",
                                             "write keys as plain words, e.g. 'filters: 6' (quote a key that looks like a number)"))
                continue
            value_path = f"{path}.{key}" if path else key
            value = self.node(value_path, depth + 1)
            if key in out:
                first = keys[key]
                self.problems.append(Problem(key_where.at(value_path),
                                             f"duplicate key '{key}' (first at line {first.line}, again at line {key_where.line})",
                                             "keep one of them: YAML would silently use the last"))
                if len(self.problems) >= MAX_PROBLEMS:
                    raise _Refused(key_event.start_mark, f"more than {MAX_PROBLEMS} problems; reading stopped here",
                                   "fix the ones listed and check again")
                continue
            keys[key] = key_where.at(value_path)
            out[key] = value
        self.loader.get_event()
        return Node(out, where, keys)

    def key(self, depth: int):
        """The next mapping key when it is a plain word (a scalar read as text), else None
        (the key consumed; a key that is a list or mapping is consumed whole)."""
        event = self.loader.peek_event()
        if not isinstance(event, yaml.ScalarEvent) or event.anchor:
            kept = len(self.problems)
            self.node("", depth)    # raises for an anchor or alias
            del self.problems[kept:]
            return None
        self.loader.get_event()
        self.count += 1
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.tag(event.value, event.implicit)
        return event.value if tag == "tag:yaml.org,2002:str" else None

    def tag(self, text: str, implicit) -> str:
        """The tag YAML's rules give a scalar written without one (PyYAML's resolver, whose
        regular expressions are the slowest step of reading a long spec: asked once per text)."""
        known = (text, implicit)
        if known not in self.tags:
            self.tags[known] = self.loader.resolve(yaml.ScalarNode, text, implicit)
        return self.tags[known]

    def refuse_tag(self, where, tag) -> Node:
        self.problems.append(Problem(where, f"tag '{tag}' is not allowed",
                                     "remove the tag: a spec holds only plain values, lists and mappings"))
        return Node(None, where)


def read_text(path) -> tuple[str, str]:
    """Read a spec file as UTF-8 text. Returns (text, display name). A file that cannot be
    read at all is a UsageError (exit 2); bad content is a SpecError (exit 1). Only a regular
    file is opened (a FIFO would block, a device such as /dev/zero never ends and reports
    size 0), and at most MAX_BYTES + 1 bytes are read whatever its size says."""
    name = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except (OSError, ValueError) as e:     # a name too long, a NUL in it, a folder that is a file …
        raise UsageError(f"{name}: cannot be read: {getattr(e, 'strerror', None) or e}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{name}: is a directory, not a spec file")
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{name}: is not a regular file (a pipe, socket or device); give the spec's file")
    if info.st_size > MAX_BYTES:
        raise _too_big(name, info.st_size)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, the open does not wait
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise UsageError(f"{name}: is not a regular file (a pipe, socket or device); give the spec's file")
            raw = file.read(MAX_BYTES + 1)
    except OSError as e:
        raise UsageError(f"{name}: cannot be read: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:    # it grew since the stat
        raise _too_big(name, len(raw))
    try:
        return raw.decode("utf-8"), name
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError([Problem(Where(name, line, column), f"byte 0x{raw[e.start]:02x} is not valid UTF-8",
                                 "save the file as UTF-8")]) from None


def _too_big(name: str, size: int) -> SpecError:
    return SpecError([Problem(Where(name, 1, 1), f"file is {size:,} bytes; a spec may be at most {MAX_BYTES:,}",
                              "a spec describes a network, not data: keep data in files named under 'data:'")])


def parse_text(text: str, name: str = "<spec>") -> Node:
    """Parse spec text into a Node tree, or raise SpecError."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise SpecError([Problem(Where(name, 1, 1), f"spec text is larger than {MAX_BYTES:,} bytes", "a spec describes a network, not data: keep data in files named under 'data:'")])
    composer = None
    try:
        composer = _Composer(text, name)    # inside the try: PyYAML reads the first characters as it starts
        root = composer.root()
    except _Refused as r:
        found = composer.problems if composer is not None else []
        raise SpecError([*found, Problem(_where(name, r.mark), r.message, r.hint)]) from None
    except yaml.reader.ReaderError as e:    # a character YAML does not allow (a control character, NUL)
        raise SpecError([_unreadable_character(text, name, e)]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        message = (e.problem or e.context or "invalid YAML").strip()
        raise SpecError([Problem(_where(name, mark), f"invalid YAML: {message}", _syntax_hint(text, mark))]) from None
    except yaml.YAMLError as e:
        raise SpecError([Problem(Where(name, 1, 1), f"invalid YAML: {e}", "check the YAML syntax: indentation, colons, brackets and quotes")]) from None
    except (RecursionError, ValueError, MemoryError) as e:  # PyYAML's own limits, not YAMLError
        raise SpecError([Problem(Where(name, 1, 1), f"YAML could not be read: {type(e).__name__}",
                                 "flatten deep nesting and keep numbers short")]) from None
    finally:
        if composer is not None:
            composer.loader.dispose()
    if root is None:
        raise SpecError([Problem(Where(name, 1, 1), "the spec is empty",
                                 "start with 'name:', 'input: [H, W, C]' and 'layers:'")])
    if composer.problems:
        raise SpecError(composer.problems)
    return root


def _unreadable_character(text: str, name: str, error) -> Problem:
    """The problem for a character the YAML reader refuses, at its line and column. libyaml
    counts the position in UTF-8 bytes, PyYAML's own reader in characters."""
    position = max(0, error.position or 0)
    if _LOADER is not yaml.SafeLoader:
        position = len(text.encode("utf-8")[:position].decode("utf-8", "ignore"))
    position = min(position, len(text))
    before = text[:position]
    line, column = before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1
    character = text[position] if position < len(text) else ""
    shown = f"U+{ord(character):04X}" if character else "a character"
    return Problem(Where(name, line, column), f"control character {shown} is not allowed in a spec",
                   "remove it: a spec is plain text (save it from a text editor; indent with spaces)")


def _syntax_hint(text: str, mark) -> str:
    """How to fix a YAML syntax error at `mark`; a `${…}` expression unquoted inside a flow
    mapping `{…}` is a common one (YAML reads its braces as another mapping)."""
    if mark is not None:
        lines = text.splitlines()
        line = lines[mark.line] if 0 <= mark.line < len(lines) else ""
        if "${" in line and "{" in line.split("${", 1)[0]:
            return ("quote the expression: inside {…} YAML reads ${…}'s braces as a mapping, "
                    "e.g. filters: \"${filters * 2}\"")
    return ("check the YAML here: indent with spaces (not tabs), close every bracket and quote, "
            "and put a space after each ':'")


def load(path) -> Node:
    text, name = read_text(path)
    return parse_text(text, name)


def _where(name, mark, path="") -> Where:
    if mark is None:
        return Where(name, 1, 1, path)
    return Where(name, mark.line + 1, mark.column + 1, path)


def _scalar(text: str, tag: str, style):
    """A scalar's value from its text and resolved tag (one of the standard tags)."""
    if tag == "tag:yaml.org,2002:str":
        if not style and _EXPONENT_FLOAT.match(text):   # plain: None from PyYAML, "" from libyaml
            return float(text)
        return text
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
        raise Invalid(f"'{text}' is a base-60 number in YAML 1.1 ({_construct(text, tag)})",
                      "write the number itself, or [height, width] for a pair; quote it for text")
    if tag in ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
        raise Invalid(f"a plain value cannot be tagged as a {'mapping' if tag.endswith('map') else 'list'}",
                      "remove the tag")
    value = _construct(text, tag)
    if isinstance(value, float) and value != value:
        raise Invalid("NaN is not a valid value", "write a number")
    return value


def _construct(text: str, tag: str):
    """PyYAML's reading of a plain value with an int, float, bool or null tag; an explicit
    tag on text it does not fit (`!!bool yes 3`, `!!int abc`) is Invalid."""
    try:
        return _CONSTRUCT[tag](_CONSTRUCTOR, yaml.ScalarNode(tag, text))
    except (ValueError, OverflowError, KeyError, TypeError, IndexError, AttributeError, yaml.YAMLError):
        raise Invalid(f"cannot read {text!r} as {tag.rsplit(':', 1)[-1]}",
                      "write a plain number, word, list or mapping (without a '!!' tag)") from None
