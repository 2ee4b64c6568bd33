"""YAML → Spec: every value validated, every layer knows its file:line:column.

`load_spec(path)` (or `parse_spec(text)`) returns a frozen `Spec`, or raises SpecError
listing every problem found. Names are resolved here: each layer gets a name unique in the
model (a composite prefixes its children's names with its own), and `inputs:` / `with:`
become those unique names, so the later stages never look at YAML again.
"""
from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..errors import Invalid, Problem, SpecError, Where
from .expr import substitute
from ..fields import Range
from .values import coerce, did_you_mean, parse_fields
from ..layers import REGISTRY
from ..layers.base import PARTS, Layer
from ..layers.composite import BlockUse, Repeat
from .sections import Data, Train, parse_sections
from .source import Node

PREVIOUS = ""              # in Layer.inputs: the previous layer's output
MAX_LAYERS = 20_000        # after blocks and repeats are expanded; ResNet-152 has ~500
MAX_NESTING = 50           # layer lists inside composites and blocks; the zoo nests 3 deep (block → residual → body)
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
COMMON_KEYS = ("name", "inputs", "with", "rounding", "trainable")

# Keras class names a user may write as a kind.
KERAS_KINDS = {
    "conv2d": "conv", "convolution2d": "conv", "depthwiseconv2d": "depthwise_conv", "separableconv2d": "separable_conv",
    "conv2dtranspose": "conv_transpose", "maxpooling2d": "max_pool", "maxpool2d": "max_pool", "maxpool": "max_pool",
    "averagepooling2d": "avg_pool", "avgpool2d": "avg_pool", "avgpool": "avg_pool",
    "globalaveragepooling2d": "global_avg_pool", "globalmaxpooling2d": "global_max_pool",
    "batchnormalization": "batchnorm", "batch_norm": "batchnorm", "batchnorm2d": "batchnorm", "linear": "dense",
    "zeropadding2d": "pad", "cropping2d": "crop", "upsampling2d": "upsample", "concatenate": "concat",
    "leakyrelu": "leaky_relu", "convolution": "conv", "pool": "max_pool",
}


@dataclass(frozen=True)
class Budget:
    """Limits a spec must stay within before anything is allocated (settable per spec or
    on the command line).

    Attributes:
      params: the most parameters (default 2 billion; VGG16 has 138 million).
      activation_bytes: the most activation memory for one image in float32 (default 4 GiB).
    """

    params: int = 2_000_000_000
    activation_bytes: int = 4 << 30


@dataclass(frozen=True)
class Spec:
    name: str
    input: tuple
    layers: tuple
    file: str = "<spec>"
    rounding: str = "exact"
    budget: Budget = Budget()
    description: str = ""
    resolved: dict = field(default_factory=dict, compare=False)   # the YAML as parsed, overrides applied (load.py)
    where: Where = Where("<spec>", 1, 1)
    data: Data = Data()          # typed sections (sections.py); defaults when absent
    augment: tuple = ()
    train: Train = Train()

    def all_layers(self):
        """Every layer, composites' children included, in order."""
        def walk(layers):
            for layer in layers:
                yield layer
                for _, children in layer.args.children():
                    yield from walk(children)
        return walk(self.layers)


TOP_KEYS = ("name", "description", "input", "layers", "blocks", "rounding", "budget", "data", "augment", "train")


def from_node(root: Node, prefix: str = "", resolved: dict | None = None, problems=()) -> Spec:
    """The parser's entry point: a Node tree (with any overrides already applied, see
    load.py) → a Spec. `resolved` is the tree as plain values, kept on the Spec for the run
    folder's spec.yaml; `problems` are ones found before (in the overrides), reported with
    the spec's own."""
    problems: list[Problem] = list(problems)
    file = root.where.file
    if not root.is_map:
        raise SpecError([Problem(root.where, "a spec must be a mapping with 'name', 'input' and 'layers'",
                                 "start the file with 'name: mynet'")])
    for key in root.value:
        if key not in TOP_KEYS:
            problems.append(Problem(root.key_where(key), f"unknown top-level key '{key}'", did_you_mean(key, TOP_KEYS)))
    top = root.value
    name = _top(top, "name", str, problems, root) or "model"
    if "name" in top and isinstance(top["name"].value, str) and not NAME.match(top["name"].value):
        problems.append(Problem(top["name"].where, f"name '{name}' must start with a letter and use letters, digits and _", "e.g. name: my_net"))
    shape = _input(top.get("input"), root, problems)
    rounding = _top(top, "rounding", Literal["exact", "floor"], problems, root, "exact")
    budget = Budget()
    if "budget" in top:
        if top["budget"].is_map:
            budget = parse_fields(Budget, top["budget"], problems) or budget
        else:
            problems.append(Problem(top["budget"].where, f"'budget' must be a mapping, got {top['budget'].value!r}",
                                    "e.g. budget: {params: 50000000, activation_bytes: 1000000000}"))
    blocks = _blocks(top.get("blocks"), problems)
    parser = _Parser(file, blocks, problems)
    layers = ()
    if "layers" not in top:
        problems.append(Problem(root.where, "missing 'layers:'", "list the layers, e.g. '- conv: {filters: 6, kernel: 5}'"))
    elif not top["layers"].is_list or not top["layers"].value:
        problems.append(Problem(top["layers"].where, "'layers' must be a non-empty list of layers", "e.g. layers: [{conv: {filters: 6, kernel: 5}}, flatten, {dense: 10}]"))
    else:
        root_scope = _Scope(prefix, None)   # a prefix: the spec is a backbone inside another (layers/backbone.py)
        root_scope.names["input"] = f"{prefix}_input" if prefix else "input"
        parser.used.add(root_scope.names["input"])
        layers = parser.sequence(top["layers"], root_scope)
        parser.check_parts()
    data, augment, train = parse_sections(top, shape, problems)
    if problems:
        raise SpecError(problems)
    return Spec(name=name, input=shape, layers=layers, file=file, rounding=rounding, budget=budget,
                description=top["description"].value if "description" in top else "",
                resolved=resolved or {}, where=root.where, data=data, augment=augment, train=train)


def _top(top, key, annotation, problems, root, default=None):
    if key not in top:
        return default
    try:
        return coerce(top[key], annotation)
    except Invalid as e:
        problems.append(Problem(top[key].where, f"'{key}' {e.message}", e.hint))
        return default


def _input(node, root, problems):
    if node is None:
        problems.append(Problem(root.where, "missing 'input:'", "give the image size: input: [height, width, channels]"))
        return (1, 1, 1)
    try:
        shape = coerce(node, tuple[int, ...])
    except Invalid as e:
        problems.append(Problem(node.where, f"'input' {e.message}", "write input: [height, width, channels]"))
        return (1, 1, 1)
    if len(shape) != 3 or any(d < 1 for d in shape):
        problems.append(Problem(node.where, f"'input' must be [height, width, channels] of positive sizes, got {list(shape)}",
                                "e.g. input: [32, 32, 3] for a colour image, [28, 28, 1] for grayscale"))
        return (1, 1, 1)
    return shape


@dataclass
class _Block:
    params: dict          # name → default Node, or None when required
    layers: Node
    where: Where


def _blocks(node, problems) -> dict:
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
            if key not in ("params", "layers", "description"):
                problems.append(Problem(body.key_where(key), f"unknown key '{key}' in block '{name}'",
                                        did_you_mean(key, ("params", "layers", "description"))))
        params = {}
        p = body.value.get("params")
        if p is not None:
            if not p.is_map:
                problems.append(Problem(p.where, "'params' must map names to defaults (or 'required')", "e.g. params: {filters: required, stride: 1}"))
            else:
                for pname, default in p.value.items():
                    if not NAME.match(pname) or pname == "index":
                        problems.append(Problem(p.key_where(pname), f"parameter name '{pname}' is not allowed", "use letters, digits and _, starting with a letter ('index' is repeat's)"))
                    params[pname] = None if default.value == "required" else default
        layers = body.value.get("layers")
        if layers is None or not layers.is_list or not layers.value:
            problems.append(Problem(body.where, f"block '{name}' needs a non-empty 'layers:' list", "e.g. layers: [{conv: {filters: 8, kernel: 3}}]"))
            continue
        blocks[name] = _Block(params, layers, where)
    return blocks


class _Scope:
    """Names visible in one sequence: a composite's children share its scope."""

    def __init__(self, prefix, parent, owner=""):
        self.prefix, self.parent = prefix, parent
        self.owner = owner            # the composite or block use whose layers these are ("" at the top)
        self.names: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def qualify(self, local):
        return f"{self.prefix}_{local}" if self.prefix else local

    def resolve(self, local):
        scope = self
        while scope:
            if local in scope.names:
                return scope.names[local]
            scope = scope.parent
        return None

    def visible(self):
        scope, names = self, []
        while scope:
            names += list(scope.names)
            scope = scope.parent
        return names


class _Parser:
    def __init__(self, file, blocks, problems):
        self.file, self.blocks, self.problems = file, blocks, problems
        self.used: set[str] = set()
        self.where_of: dict = {}   # unique layer name → where it is defined
        self.count = 0
        self.expanding: list[str] = []
        self.nesting = 0           # how many layer lists enclose the one being parsed
        self.too_deep = False
        self.owners: dict[str, list[str]] = {}   # local name → the composites it was given in

    def error(self, where, message, hint=""):
        self.problems.append(Problem(where, message, hint))

    def sequence(self, node: Node, scope: _Scope) -> tuple:
        # bounded, so blocks using blocks using blocks … end in an error, not a RecursionError
        if self.nesting >= MAX_NESTING:
            if not self.too_deep:
                self.too_deep = True
                self.error(node.where, f"layers are nested more than {MAX_NESTING} deep (composites and blocks "
                           f"inside each other{': ' + ' → '.join(self.expanding[:6]) + ' → …' if self.expanding else ''})",
                           "flatten the structure: fewer blocks that use other blocks, fewer composites inside composites")
            return ()
        self.nesting += 1
        try:
            return self._sequence(node, scope)
        finally:
            self.nesting -= 1

    def _sequence(self, node: Node, scope: _Scope) -> tuple:
        explicit = {item.value[k].value["name"].value for item in node.value if item.is_map
                    for k in item.value if item.value[k].is_map and "name" in item.value[k].value
                    and isinstance(item.value[k].value["name"].value, str)}
        scope.reserved = getattr(scope, "reserved", set()) | explicit
        out = []
        for item in node.value:
            layer = self.layer(item, scope)
            if layer is not None:
                out.append(layer)
        return tuple(out)

    def layer(self, node: Node, scope: _Scope) -> Optional[Layer]:
        self.count += 1
        if self.count > MAX_LAYERS:
            if self.count == MAX_LAYERS + 1:
                self.error(node.where, f"the spec expands to more than {MAX_LAYERS:,} layers",
                           "lower a repeat's 'times' or nest fewer repeats")
            return None
        if isinstance(node.value, str):
            kind, body = node.value, Node(None, node.where)
        elif node.is_map and len(node.value) == 1:
            kind, body = next(iter(node.value.items()))
        elif node.is_map and any(k in COMMON_KEYS for k in node.value):
            kinds = [k for k in node.value if k not in COMMON_KEYS]
            self.error(node.where, f"a layer is a one-key mapping `kind: {{arguments}}`; got keys {', '.join(node.value)}",
                       f"move {', '.join(k for k in node.value if k in COMMON_KEYS)} inside {kinds[0] if kinds else 'the kind'}'s "
                       f"arguments, e.g. `- conv: {{filters: 8, kernel: 3, name: c1}}`")
            return None
        else:
            self.error(node.where, "a layer is a one-key mapping `kind: {arguments}` or a bare kind like `flatten`",
                       "e.g. `- conv: {filters: 6, kernel: 5}`")
            return None
        if kind in self.blocks:
            return self.block_use(kind, body, node, scope)
        cls = REGISTRY.get(kind)
        if cls is None:
            self.error(node.key_where(kind) if node.is_map else node.where, f"unknown layer kind '{kind}'",
                       self._kind_hint(kind))
            return None
        args_node = body
        if body.value is None:
            args_node = Node({}, body.where)
        elif not body.is_map:
            if cls.main is None:
                self.error(body.where, f"{kind} takes no single value; got {body.value!r}",
                           f"write `- {kind}` alone, or `- {kind}: {{name: …}}`")
                return None
            args_node = Node({cls.main: body}, body.where, {cls.main: body.where})
        common = self.common(args_node, cls, scope)
        if common is None:
            return None
        name, inputs, rounding, trainable = common
        child_scope = _Scope(name, scope, f"{kind} '{name}'")
        child_scope.names["input"] = f"{name}_input"   # inside a composite, `input` is its input
        before = len(self.problems)
        if cls is Repeat:
            args = self.repeat(args_node, child_scope)
        else:
            args = parse_fields(cls, args_node, self.problems,
                                layer_parser=lambda n, label: self.sequence(n, child_scope) if n.value else (),
                                skip=COMMON_KEYS)
        if args is None or len(self.problems) > before:
            return None
        for ref in getattr(args, "refs", ()):
            target = self._reference(getattr(args, ref), args_node.value[ref].where, scope, exclude=name)
            if target is None:
                return None
            if target == name:   # its own name is already in scope, but it has no output yet
                self.error(args_node.value[ref].where, f"'{ref}: {getattr(args, ref)}' names this layer itself",
                           "name an earlier layer")
                return None
            args = dataclasses.replace(args, **{ref: target})
        if hasattr(args, "resolve"):   # a kind that reads another file, with its name and this file (backbone)
            try:
                args = args.resolve(name, self.file, self.problems)
            except Invalid as e:
                self.error(args_node.where, f"{cls.kind} '{name}': {e.message}", e.hint)
                return None
        return Layer(args, name, inputs, node.where, rounding, trainable)

    def common(self, args_node, cls, scope):
        """name, inputs / with, rounding, trainable: keys every layer may carry."""
        values = args_node.value
        ok = True
        local = None
        if "name" in values:
            local = values["name"].value
            if not isinstance(local, str) or not NAME.match(local):
                self.error(values["name"].where, f"name {local!r} must start with a letter and use letters, digits and _", "e.g. name: conv1")
                ok = False
            elif local == "input":
                self.error(values["name"].where, "the name 'input' is reserved: it means the model's (or the enclosing "
                           "block's) input", "choose another name")
                ok = False
            elif local in scope.names:
                self.error(values["name"].where, f"name '{local}' is used twice", "give each layer its own name")
                ok = False
        if local is None or not ok:
            n = scope.counts.get(cls.kind, 0)
            while True:
                n += 1
                candidate = f"{cls.kind}_{n}"
                if candidate not in scope.names and candidate not in getattr(scope, "reserved", ()) \
                        and scope.qualify(candidate) not in self.used:
                    break
            scope.counts[cls.kind] = n
            local = candidate
        name = scope.qualify(local)
        if name in self.used and ok:
            self.error(args_node.where, f"layer name '{name}' is already taken", "rename one of the layers")
            ok = False
        inputs = ()
        if "inputs" in values and "with" in values:
            self.error(values["with"].where, "give either 'inputs' or 'with', not both", "'inputs' lists every input; 'with' joins named layers to the previous one: keep one")
            ok = False
        for key in ("inputs", "with"):
            if key not in values:
                continue
            if key == "with" and not cls.merges:
                self.error(args_node.key_where("with"), f"'with' is for concat, add and multiply, not {cls.kind}",
                           "use 'inputs: [name]' to read another layer")
                ok = False
                continue
            try:
                refs = coerce(values[key], tuple[str, ...])
            except Invalid as e:
                self.error(values[key].where, f"'{key}' {e.message}", "list layer names, e.g. [conv_1, pool_2]")
                ok = False
                continue
            resolved = []
            for ref in refs:
                target = self._reference(ref, values[key].where, scope)
                ok = ok and target is not None
                resolved.append(target)
            inputs = tuple(resolved) if key == "inputs" else (PREVIOUS, *resolved)
        count = len(inputs) or 1
        low, high = cls.inputs_range
        if ok and not low <= count <= high:
            if low > 1:
                self.error(args_node.where, f"{cls.kind} joins at least {low} inputs, got {count}",
                           f"add `with: [name]` (joined to the previous layer) or `inputs: [a, b]`")
            else:
                self.error(args_node.where, f"{cls.kind} reads one input, got {count}", "use concat or add to join layers first")
            ok = False
        rounding = None
        if "rounding" in values:
            try:
                rounding = coerce(values["rounding"], Literal["exact", "floor"])
            except Invalid as e:
                self.error(values["rounding"].where, f"'rounding' {e.message}", e.hint)
                ok = False
        trainable = True
        if "trainable" in values:
            try:
                trainable = coerce(values["trainable"], bool)
            except Invalid as e:
                self.error(values["trainable"].where, f"'trainable' {e.message}", e.hint)
                ok = False
        scope.names[local] = name
        self.where_of.setdefault(name, args_node.where)
        if scope.owner and scope.owner not in self.owners.setdefault(local, []):
            self.owners[local].append(scope.owner)
        self.used.add(name)
        return (name, inputs, rounding, trainable) if ok else None

    def check_parts(self):
        """A user's name must not be one the builder gives a layer's extra Keras layers
        (conv 'c' with batchnorm also builds 'c_bn'): Keras would refuse the model."""
        for name, where in self.where_of.items():
            base, _, part = name.rpartition("_")
            if part in PARTS and base in self.used:
                self.error(where, f"name '{name}' is reserved for the {part} layer that '{base}' may build in Keras",
                           f"choose another name, e.g. '{base}_{part}2' or '{part}_of_{base}'")

    def _reference(self, ref, where, scope, exclude=None):
        target = scope.resolve(ref)
        if target is None and self.owners.get(ref):   # it exists, but inside a composite this one is not in
            owners = " and ".join(self.owners[ref])
            self.error(where, f"no layer named '{ref}' here: '{ref}' is local to {owners}",
                       "names inside a composite are seen only inside it; read the composite's own output, "
                       f"or move '{ref}' out of it")
        elif target is None:
            visible = [n for n in scope.visible() if scope.resolve(n) != exclude]   # not the layer itself
            self.error(where, f"no layer named '{ref}' before this one",
                       did_you_mean(ref, visible) if visible else "name a layer defined earlier with 'name:'")
        return target

    def repeat(self, args_node, scope):
        values = args_node.value
        times = None
        if "times" in values:
            try:
                times = coerce(values["times"], int)
                Range(1, MAX_LAYERS).check(times)
            except Invalid as e:
                self.error(values["times"].where, f"'times' {e.message}", e.hint)
                return None
        args = parse_fields(Repeat, Node({k: v for k, v in values.items() if k != "layers"} | {"layers": Node([], args_node.where)},
                                         args_node.where, args_node.keys),
                            self.problems, layer_parser=lambda n, label: (), skip=COMMON_KEYS)
        layers = values.get("layers")
        if args is None or layers is None:
            return None
        if not layers.is_list or not layers.value:
            self.error(layers.where, "'layers' must be a non-empty list of layers", "e.g. layers: [{conv: {filters: 8, kernel: 3}}]")
            return None
        copies = []
        for i in range(1, times + 1):
            body = _substituted(layers, {"index": i}, self.problems, keep=())
            if body is None:
                return None
            copy_scope = _Scope(scope.qualify(str(i)), scope, scope.owner)
            copy_scope.names["input"] = copy_scope.qualify("input")   # this repetition's input
            copies.append(self.sequence(body, copy_scope))
            if self.count > MAX_LAYERS:
                return None
        return dataclasses.replace(args, copies=tuple(copies))

    def block_use(self, kind, body, node, scope):
        block = self.blocks[kind]
        if kind in self.expanding:
            self.error(node.where, f"block '{kind}' uses itself ({' → '.join(self.expanding + [kind])})",
                       "a block cannot contain itself")
            return None
        args_node = Node({}, body.where) if body.value is None else body
        if not args_node.is_map:
            self.error(body.where, f"block '{kind}' takes its parameters as a mapping",
                       f"e.g. `- {kind}: {{{', '.join(f'{p}: …' for p in block.params) or 'name: …'}}}`")
            return None
        values, ok = {}, True
        for key, value in args_node.value.items():
            if key in COMMON_KEYS:
                continue
            if key not in block.params:
                self.error(args_node.key_where(key), f"block '{kind}' has no parameter '{key}'",
                           did_you_mean(key, block.params) if block.params else "this block takes no parameters")
                ok = False
                continue
            if not (value.value is None or isinstance(value.value, (int, float, str, bool))):
                self.error(value.where, f"parameter '{key}' must be a single value", "give a number, a word, true/false or null")
                ok = False
            values[key] = value.value
        for pname, default in block.params.items():
            if pname not in values:
                if default is None:
                    self.error(args_node.where, f"block '{kind}' needs parameter '{pname}'", f"add '{pname}: …'")
                    ok = False
                else:
                    values[pname] = default.value
        fake = type("BlockKind", (), {"kind": kind, "merges": False, "inputs_range": (1, 1)})
        common = self.common(args_node, fake, scope)
        if not ok or common is None:
            return None
        name, inputs, rounding, trainable = common
        layers = _substituted(block.layers, values, self.problems, keep=("index",))
        if layers is None:
            return None
        self.expanding.append(kind)
        block_scope = _Scope(name, scope, f"block '{kind}' (used as '{name}')")
        block_scope.names["input"] = f"{name}_input"   # inside a block, `input` is the use's input
        try:
            children = self.sequence(layers, block_scope)
        finally:
            self.expanding.pop()
        use = BlockUse(block=kind, values=tuple(sorted((k, v) for k, v in values.items())), layers=children)
        return Layer(use, name, inputs, node.where, rounding, trainable)

    def _kind_hint(self, kind):
        known = sorted(REGISTRY) + sorted(self.blocks)
        lowered = kind.lower()
        if lowered in KERAS_KINDS:
            return f"did you mean '{KERAS_KINDS[lowered]}'? ('{kind}' is Keras's name)"
        return did_you_mean(kind, known)


def _substituted(node: Node, values: dict, problems, keep) -> Optional[Node]:
    """A deep copy of `node` with `$name` and `${expr}` replaced by the use's values."""
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
