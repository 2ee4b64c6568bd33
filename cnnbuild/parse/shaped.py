"""Arguments that read the incoming tensor's shape: `filters: ${in.channels // 2}` (DenseNet's
transition), `units: ${max(1, in.channels // 16)}` (a squeeze-and-excitation's squeeze).

The names are `in.height`, `in.width` and `in.channels` (expr.py's SHAPE_NAMES): the shape of
the tensor the layer reads (its first input), without the batch axis; after a flatten or a
dense, `in.channels` is the vector's length. They are known only when a walker reaches the
layer, so such a layer is parsed into a `Shaped`: its kind and its arguments as written, made
into the kind's own arguments by `resolve(shape)` — one function, called by the check
(`infer`) and by the Keras builder (`build`) with the same shape, so both see the same values.
Only a layer's own arguments may read the shape, not a composite's (its children may).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Invalid, Problem
from ..layers.base import Kind
from .blocks import substituted
from .expr import SHAPE, SHAPE_NAMES
from .source import Node
from .values import parse_fields

# shapes a Shaped layer is read with at parse time, for what is asked of it before any walk (its
# activation, the Keras parts it builds, its drawing's label): the first that reads is kept
PROBES = ((64, 64, 64), (256, 256, 256), (8, 8, 8))


def reads_shape(node: Node, skip) -> list:
    """The values in a layer's own arguments (not those in `skip`) that read the incoming shape."""
    found = []

    def walk(n):
        if n.is_map:
            for v in n.value.values():
                walk(v)
        elif n.is_list:
            for v in n.value:
                walk(v)
        elif isinstance(n.value, str) and "${" in n.value and SHAPE in n.value:
            found.append(n)
    for key, value in (node.value.items() if node.is_map else ()):
        if key not in skip:
            walk(value)
    return found


def shape_values(shape: tuple) -> dict:
    """The names an expression reads for a tensor of `shape` (no batch axis).

    >>> shape_values((28, 28, 64))
    {'in.height': 28, 'in.width': 28, 'in.channels': 64}
    >>> shape_values((120,))
    {'in.channels': 120}
    """
    if len(shape) == 3:
        return dict(zip(SHAPE_NAMES, shape))
    return {"in.channels": shape[-1]}


def _read(cls, node: Node, shape: tuple, skip, problems: list):
    """The kind's arguments with the shape's values written in, or None (problems added)."""
    written = substituted(node, shape_values(shape), problems, keep=())
    return None if written is None else parse_fields(cls, written, problems, skip=skip)


@dataclass(frozen=True, eq=False)
class Shaped:
    """A layer of kind `cls` whose arguments (`node`) read the incoming tensor's shape. Asked
    anything else than infer and build, it answers as its `template` (read with a probe shape)."""

    cls: type
    node: Node
    skip: tuple
    template: object = field(default=None)

    @property
    def kind(self) -> str:
        return self.cls.kind

    def resolve(self, shape: tuple):
        """The kind's arguments for an incoming tensor of `shape`; raises Invalid."""
        problems: list[Problem] = []
        args = _read(self.cls, self.node, tuple(shape), self.skip, problems)
        if args is None:
            first = problems[0]
            names = ", ".join(f"{k} = {v}" for k, v in shape_values(tuple(shape)).items())
            raise Invalid(f"{first.message} (with {names}, at {first.where})", first.hint)
        return args

    def infer(self, ins, ctx):
        return self.resolve(ins[0].shape).infer(ins, ctx)

    def build(self, ins, ctx):
        return self.resolve(ctx.shape(ins[0])).build(ins, ctx)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.template if self.template is not None else _DEFAULTS, name)


_DEFAULTS = Kind()


def shaped(cls, node: Node, skip, problems: list):
    """A Shaped layer of kind `cls`, or None after a problem that does not depend on the shape
    (an unknown argument, a misspelt activation): those are reported here, the rest by the check."""
    reading = {id(n) for n in reads_shape(node, skip)}
    first: list[Problem] = []
    for probe in PROBES:
        found: list[Problem] = []
        template = _read(cls, node, probe, skip, found)
        if template is not None:
            return Shaped(cls, node, tuple(skip), template)
        first = first or found
    places = {_where(n) for n in _nodes(node) if id(n) in reading}
    own = [p for p in first if (p.where.file, p.where.line, p.where.column) not in places]
    if own:
        problems.extend(own)
        return None
    return Shaped(cls, node, tuple(skip))


def _nodes(node: Node):
    yield node
    children = node.value.values() if node.is_map else node.value if node.is_list else ()
    for child in children:
        yield from _nodes(child)


def _where(node: Node) -> tuple:
    return (node.where.file, node.where.line, node.where.column)
