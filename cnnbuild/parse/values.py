"""Typed argument parsing: YAML nodes → the typed values of fields.py.

`parse_fields(cls, node)` reads a YAML mapping into the frozen dataclass `cls`, checking
every value against the field's annotation and collecting every problem.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from dataclasses import MISSING
from typing import Annotated, Any, Literal, Union

from ..errors import Invalid, Problem
from ..fields import BranchList, KernelValues, LayerList, PaddingSpec, PairOf, Range
from ..layers import REGISTRY
from ..layers.base import Activation
from .source import Node


# Keras's argument names and what cnnbuild calls them, for "did you mean" (only names Keras's
# layers really take: a hint that calls a word Keras's must be true).
KERAS_NAMES = {
    "kernel_size": "kernel", "strides": "stride", "pool_size": "size", "dilation_rate": "dilation",
    "use_bias": "bias", "kernel_initializer": "initializer", "depth_multiplier": "multiplier",
    "negative_slope": "alpha", "target_shape": "shape",
}
# Other spellings that are nobody's API but common guesses.
OTHER_SPELLINGS = {"num_pieces": "pieces", "padding_type": "padding_mode"}


# Other frameworks' and papers' words for a value: word → (a value the choices must hold for
# the word to mean this, the hint). Checked before spelling guesses, for any list of choices.
OTHER_NAMES = {
    "xavier": ("glorot_uniform", "did you mean 'glorot_uniform' or 'glorot_normal'? (Xavier = Glorot: Xavier Glorot's initialisation)"),
    "xavier_uniform": ("glorot_uniform", "did you mean 'glorot_uniform'? (Xavier = Glorot)"),
    "xavier_normal": ("glorot_normal", "did you mean 'glorot_normal'? (Xavier = Glorot)"),
    "kaiming": ("he_normal", "did you mean 'he_normal' or 'he_uniform'? (Kaiming = He: Kaiming He's initialisation)"),
    "he": ("he_normal", "did you mean 'he_normal' or 'he_uniform'?"),
    "msra": ("he_normal", "did you mean 'he_normal' or 'he_uniform'? (MSRA = He: Kaiming He's initialisation)"),
    "kaiming_normal": ("he_normal", "did you mean 'he_normal'? (Kaiming = He)"),
    "kaiming_uniform": ("he_uniform", "did you mean 'he_uniform'? (Kaiming = He)"),
}
# a layer kind written as an activation (`activation: maxout`): its own hint (Kind.activation_hint)
OTHER_NAMES.update({kind: ("relu", cls.activation_hint) for kind, cls in REGISTRY.items() if cls.activation_hint})


MAX_UNKNOWN = 20   # unknown arguments reported one by one in a mapping; the rest are counted


class AlreadyReported(Invalid):
    """A nested mapping failed and its problems are already in the list: its field is
    invalid, with nothing more to say about it."""

    def __init__(self):
        super().__init__("has invalid arguments (reported above)")


def parse_fields(cls, node: Node, problems: list[Problem], layer_parser=None, skip=()) -> Any:
    """Read mapping `node` into dataclass `cls`. Returns the instance, or None when any
    problem was found (each one appended to `problems`). Keys in `skip` are left for the
    caller. `layer_parser(node, label)` parses nested layer lists."""
    hints, fields = _schema(cls)
    values, ok, unknown = {}, True, 0
    mapping = node.value if node.is_map else {}
    # in the order of the fields, not of the YAML: a residual's body is read before its
    # shortcut whichever is written first, so names resolve in the order the layers are built
    for key in sorted(mapping, key=lambda k: fields[k].order if k in fields else len(fields)):
        value_node = mapping[key]
        if key in skip:
            continue
        if key not in fields:
            unknown += 1
            if unknown <= MAX_UNKNOWN:
                problems.append(Problem(node.key_where(key), f"unknown argument '{key}'", did_you_mean(key, fields)))
            elif unknown == MAX_UNKNOWN + 1:
                extra = sum(1 for k in mapping if k not in fields and k not in skip) - MAX_UNKNOWN
                problems.append(Problem(node.key_where(key), f"and {extra:,} more unknown arguments",
                                        "expected one of: " + ", ".join(fields)))
            ok = False
            continue
        try:
            values[key] = coerce(value_node, hints[key], problems, layer_parser)
        except AlreadyReported:
            ok = False
        except Invalid as e:
            problems.append(Problem(value_node.where, f"'{key}' {e.message}" if not e.message.startswith("'") else e.message, e.hint))
            ok = False
    for name, f in fields.items():
        if name not in values and name not in mapping and f.default is MISSING and f.default_factory is MISSING:
            problems.append(Problem(node.where, f"missing required argument '{name}'", _example_hint(cls, name)))
            ok = False
    if not ok:
        return None
    try:
        return cls(**values)
    except Invalid as e:  # a cross-field check in __post_init__, at the argument it names
        at = mapping.get(e.field, node)
        problems.append(Problem(at.where, e.message, e.hint))
        return None


@dataclasses.dataclass(frozen=True)
class _Field:
    order: int
    default: Any
    default_factory: Any


@functools.cache   # per class: resolving annotations is the slowest step of a parse
def _schema(cls) -> tuple[dict, dict]:
    """(field → its annotation, field → _Field) of a dataclass's YAML arguments."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")]
    return hints, {f.name: _Field(i, f.default, f.default_factory) for i, f in enumerate(fields)}


def did_you_mean(word: str, choices) -> str:
    other = OTHER_NAMES.get(word.lower())
    if other and other[0] in choices:
        return other[1]
    if word in KERAS_NAMES and KERAS_NAMES[word] in choices:
        return f"did you mean '{KERAS_NAMES[word]}'? ('{word}' is Keras's name; cnnbuild says '{KERAS_NAMES[word]}')"
    if OTHER_SPELLINGS.get(word) in choices:
        return f"did you mean '{OTHER_SPELLINGS[word]}'?"
    by_plain = {str(c).lower().replace("_", ""): c for c in choices}   # ReLU → relu, SAME → same, LeakyReLU → leaky_relu
    if word.lower().replace("_", "") in by_plain:
        return f"did you mean '{by_plain[word.lower().replace('_', '')]}'?"
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "expected one of: " + ", ".join(sorted(choices)) if choices else ""


def _example_hint(cls, name):
    return f"add '{name}: …' to {getattr(cls, 'kind', cls.__name__)}"


def _describe(value) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f"'{value}'"
    if value is None:
        return "nothing"
    if isinstance(value, list):   # a list of Nodes: show what the user wrote
        return f"the list {[v.plain() if isinstance(v, Node) else v for v in value]}"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _int(value, low=None) -> int:
    if isinstance(value, str) and value.startswith("$"):
        raise Invalid(f"refers to unknown parameter '{value}'", "define it under the block's 'params:'")
    if isinstance(value, bool) or not isinstance(value, int):
        hint = "write a whole number"
        if isinstance(value, float) and value.is_integer():
            hint = f"write {int(value)}"
        raise Invalid(f"must be a whole number, got {_describe(value)}", hint)
    if low is not None and value < low:
        raise Invalid(f"must be at least {low}, got {value}", f"use {low} or more")
    return value


def coerce(node: Node, annotation, problems=None, layer_parser=None):
    """Check one value against an annotation; returns the normalised value or raises Invalid."""
    value = node.value
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *meta = typing.get_args(annotation)
        marker = meta[0]
        if isinstance(marker, Range):
            out = coerce(node, base, problems, layer_parser)
            marker.check(out)
            return out
        if isinstance(marker, PairOf):
            if isinstance(value, list):
                if len(value) != 2:
                    raise Invalid(f"must be an int or an [height, width] pair, got {len(value)} values", "write one number, or [height, width]")
                return tuple(_int(v.value, marker.low) for v in value)
            n = _int(value, marker.low)
            return (n, n)
        if isinstance(marker, PaddingSpec):
            return _padding(node)
        if isinstance(marker, KernelValues):
            return _kernel_values(node, marker.names)
        if isinstance(marker, LayerList):
            if not isinstance(value, list):
                raise Invalid(f"must be a list of layers, got {_describe(value)}", "e.g. [{conv: {filters: 8, kernel: 3}}, relu]")
            return layer_parser(node, None)
        if isinstance(marker, BranchList):
            if not isinstance(value, list) or not all(isinstance(b.value, list) for b in value):
                raise Invalid("must be a list of branches, each a list of layers ([] passes the input through)", "e.g. branches: [[{conv: {filters: 8, kernel: 1}}], []]")
            return tuple(layer_parser(b, i) for i, b in enumerate(value))
        raise TypeError(f"unknown marker {marker!r}")
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value in choices and not isinstance(value, bool):
            return value
        words = [str(c) for c in choices]
        hint = did_you_mean(str(value), words) if isinstance(value, str) else "expected one of: " + ", ".join(words)
        if annotation == Activation and isinstance(value, str):
            raise Invalid(f"'{value}' is not an activation cnnbuild knows (they are {', '.join(words)})", hint)
        raise Invalid(f"must be one of {', '.join(words)}; got {_describe(value)}", hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(node, option, problems, layer_parser)
            except AlreadyReported:
                raise   # a mapping meant as that option, its problems reported: the others do not apply
            except Invalid as e:
                errors.append(e)
        raise errors[0] if len(errors) == 1 else Invalid(errors[-1].message, errors[-1].hint)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, list):
            if isinstance(value, (int, str)) and not isinstance(value, bool) and len(args) == 2 and args[1] is Ellipsis:
                return (coerce(node, args[0], problems, layer_parser),)
            raise Invalid(f"must be a list, got {_describe(value)}", "write a list, e.g. [a, b]")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], problems, layer_parser) for v in value)
        if len(value) != len(args):
            raise Invalid(f"must be a list of {len(args)} values, got {len(value)}", f"give exactly {len(args)} values")
        return tuple(coerce(v, a, problems, layer_parser) for v, a in zip(value, args))
    if annotation is int:
        return _int(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"must be a number, got {_describe(value)}", "write a number such as 0.5 or 1e-3")
        return float(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise Invalid(f"must be true or false, got {_describe(value)}", "write true or false")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise Invalid(f"must be text, got {_describe(value)}", "write a word (quote it if it looks like a number)")
        return value
    if dataclasses.is_dataclass(annotation):
        if not node.is_map:
            raise Invalid(f"must be a mapping of {', '.join(f.name for f in dataclasses.fields(annotation))}", f"write a mapping, e.g. {{{dataclasses.fields(annotation)[0].name}: …}}")
        sub = [] if problems is None else problems
        out = parse_fields(annotation, node, sub, layer_parser)
        if out is None:
            raise AlreadyReported() if problems is not None else Invalid(str(sub[0].message), sub[0].hint)
        return out
    raise TypeError(f"unsupported annotation {annotation!r}")


PADDING_FORMS = "'valid', 'same', an int, [ph, pw] or [[top, bottom], [left, right]]"


def _padding(node: Node):
    """Normalise padding to 'valid', 'same', or ((top, bottom), (left, right)).

    Integer forms follow the seeds' P: `1` is one row/column on every side."""
    value = node.value
    if isinstance(value, str):
        if value in ("valid", "same"):
            return value
        raise Invalid(f"must be {PADDING_FORMS}; got '{value}'", did_you_mean(value, ["valid", "same"]))
    if value is None or isinstance(value, (bool, dict)):
        raise Invalid(f"must be {PADDING_FORMS}; got {_describe(value)}",
                      "e.g. padding: same, padding: 1 or padding: [[0, 1], [0, 1]]")
    if isinstance(value, list):
        if len(value) == 2 and all(isinstance(v.value, list) for v in value):
            pairs = []
            for v in value:
                if len(v.value) != 2:
                    raise Invalid("must give each side as [before, after]", "write [[top, bottom], [left, right]]")
                pairs.append(tuple(_int(x.value, 0) for x in v.value))
            return tuple(pairs)
        if len(value) == 2:
            ph, pw = (_int(v.value, 0) for v in value)
            return ((ph, ph), (pw, pw))
        raise Invalid(f"must have 2 entries, got {len(value)}", "write padding: P, [ph, pw] or [[top, bottom], [left, right]]")
    p = _int(value, 0)
    return ((p, p), (p, p))


KERNEL_FORMS = ("a preset name, an F×F matrix [[…], …], a list of matrices or names (one per filter), "
                "or an F×F×C_in×K array")


def _kernel_values(node: Node, names: tuple):
    """A fixed kernel as written: a preset name, or numbers nested as tuples, every level
    rectangular; a list of matrices (one per filter) may hold preset names among them."""
    value = node.value
    if isinstance(value, str):
        if value in names:
            return value
        raise Invalid(f"'{value}' is not a kernel preset (they are {', '.join(names)})", did_you_mean(value, names))
    if not isinstance(value, list) or not value:
        raise Invalid(f"must be {KERNEL_FORMS}; got {_describe(value)}",
                      "e.g. weights: sharpen, or weights: [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]")
    items = [_kernel_values(v, names) if isinstance(v.value, str) else _numbers(v) for v in value]
    depths = {_depth(item) for item in items}
    if len(depths) > 1 and not depths <= {"name", 2}:
        raise Invalid(f"mixes numbers and lists at one level ({_describe(value)})", f"write {KERNEL_FORMS}")
    shapes = {_shape(item) for item in items if not isinstance(item, str)}
    if len(shapes) > 1 and "name" not in depths and depths != {2}:
        raise Invalid(f"is not rectangular: rows of shapes {sorted(shapes)} at one level",
                      "every row of a kernel needs the same number of values")
    return tuple(items)


def _numbers(node: Node):
    """A number, or a rectangular nested list of numbers, as floats in nested tuples."""
    value = node.value
    if isinstance(value, list):
        if not value:
            raise Invalid("holds an empty list", "every row of a kernel needs values")
        items = tuple(_numbers(v) for v in value)
        shapes = {_shape(item) for item in items}
        if len(shapes) > 1:
            raise Invalid(f"is not rectangular: rows of shapes {sorted(shapes)} at one level",
                          "every row of a kernel needs the same number of values")
        return items
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"holds {_describe(value)}, not a number", f"write {KERNEL_FORMS}")
    return float(value)


def _shape(value) -> tuple:
    return (len(value), *_shape(value[0])) if isinstance(value, tuple) else ()


def _depth(value):
    """How deep numbers are nested: 0 for a number, 'name' for a preset name."""
    if isinstance(value, str):
        return "name"
    return len(_shape(value))
