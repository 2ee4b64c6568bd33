"""YAML → Spec: every value validated, every layer knows its file:line:column.

`load_spec(path)` (or `parse_spec(text)`, load.py) returns a frozen `Spec`, or raises
SpecError listing every problem found. Names are resolved here (names.py): each layer gets
a name unique in the model (a composite prefixes its children's names with its own), and
`inputs:` / `with:` become those unique names. Blocks are expanded (blocks.py), repeated
lists copied, and a spec that a layer names (a backbone's `spec:`) is read and parsed here
too, so the later stages never look at YAML again.
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from ..errors import Invalid, Problem, SpecError, UsageError, Where
from ..fields import BranchList, LayerList, Range
from ..layers import REGISTRY
from ..layers.base import Layer
from ..layers.composite import BlockUse
from .blocks import INDEX, BlockHits, frozen, parse_blocks, substituted, use_values
from .names import NAME, Names, Scope
from .sections import Data, Train, parse_sections
from .shaped import reads_shape, shaped
from .source import Node, load
from .values import MAX_UNKNOWN, coerce, did_you_mean, parse_fields

PREVIOUS = ""              # in Layer.inputs: the previous layer's output
MAX_LAYERS = 5_000         # after blocks and repeats are expanded; ResNet-152 has ~500, DenseNet-264 ~800
MAX_NESTING = 50           # layer lists inside composites and blocks; the zoo nests 3 deep (block → residual → body)
COMMON_KEYS = ("name", "inputs", "with", "rounding", "trainable", "when")



def other_names() -> dict:
    """What users type for a kind, lower-cased → (the kind, whether it is a keras.layers class
    name): each kind's `keras_names` and `aliases` (Keras's 'Conv2D', PyTorch's 'linear').
    Raises ValueError when two kinds claim one word, or a word is a kind's own name.

    >>> other_names()["conv2d"], other_names()["linear"]
    (('conv', True), ('dense', False))
    """
    table = {}
    for kind, cls in REGISTRY.items():
        for word, keras in [(name, True) for name in cls.keras_names] + [(name, False) for name in cls.aliases]:
            if word.lower() in table or word.lower() in REGISTRY:
                raise ValueError(f"'{word}' names two layer kinds ({kind} and {table.get(word.lower(), (word,))[0]})")
            table[word.lower()] = (kind, keras)
    return table


OTHER_NAMES = other_names()


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
    params: tuple = ()           # (name, value) pairs: the top-level parameters' values it was read with (params.py)
    variant: Optional[str] = None

    def all_layers(self):
        """Every layer, composites' children included, in order."""
        def walk(layers):
            for layer in layers:
                yield layer
                for _, children in layer.args.children():
                    yield from walk(children)
        return walk(self.layers)


TOP_KEYS = ("name", "description", "params", "variants", "input", "layers", "blocks", "rounding", "budget", "data",
            "augment", "train")


def from_node(root: Node, prefix: str = "", resolved: dict | None = None, problems=(), reading: tuple = (),
              input_shape: tuple | None = None) -> Spec:
    """The parser's entry point: a Node tree (with any overrides already applied, see
    load.py) → a Spec. `resolved` is the tree as plain values, kept on the Spec for the run
    folder's spec.yaml; `problems` are ones found before (in the overrides), reported with
    the spec's own. `prefix` and `reading` are for a spec read as a layer's (a backbone's):
    the prefix of its layers' names, and the spec files being read around it. `input_shape`
    is for a GAN's network (parse/gan.py): its input, given rather than read from `input:`."""
    problems: list[Problem] = list(problems)
    file = root.where.file
    if not root.is_map:
        raise SpecError([Problem(root.where, "a spec must be a mapping with 'name', 'input' and 'layers'",
                                 "start the file with 'name: mynet'")])
    unknown = [key for key in root.value if key not in TOP_KEYS]
    for key in unknown[:MAX_UNKNOWN]:
        problems.append(Problem(root.key_where(key), f"unknown top-level key '{key}'", did_you_mean(key, TOP_KEYS)))
    if len(unknown) > MAX_UNKNOWN:
        problems.append(Problem(root.key_where(unknown[MAX_UNKNOWN]), f"and {len(unknown) - MAX_UNKNOWN:,} more unknown "
                                "top-level keys", "expected only: " + ", ".join(TOP_KEYS)))
    top = root.value
    name = _top(top, "name", str, problems, root) or "model"
    if "name" in top and isinstance(top["name"].value, str) and not NAME.match(top["name"].value):
        problems.append(Problem(top["name"].where, f"name '{name}' must start with a letter and use letters, digits and _", "e.g. name: my_net"))
    shape = input_shape if input_shape is not None else _input(top.get("input"), root, problems)
    rounding = _top(top, "rounding", Literal["exact", "floor"], problems, root, "exact")
    budget = Budget()
    if "budget" in top:
        if top["budget"].is_map:
            budget = parse_fields(Budget, top["budget"], problems) or budget
        else:
            problems.append(Problem(top["budget"].where, f"'budget' must be a mapping, got {top['budget'].value!r}",
                                    "e.g. budget: {params: 50000000, activation_bytes: 1000000000}"))
    parser = _Parser(file, parse_blocks(top.get("blocks"), problems), problems, reading)
    layers = ()
    if "layers" not in top:
        problems.append(Problem(root.where, "missing 'layers:'", "list the layers, e.g. '- conv: {filters: 6, kernel: 5}'"))
    elif not top["layers"].is_list or not top["layers"].value:
        problems.append(Problem(top["layers"].where, "'layers' must be a non-empty list of layers", "e.g. layers: [{conv: {filters: 6, kernel: 5}}, flatten, {dense: 10}]"))
    else:
        size = expanded_size(top["layers"], parser.blocks)
        if size > MAX_LAYERS:   # counted before any is parsed: a repeat of repeats is refused at once
            problems.append(Problem(top["layers"].where, f"the spec expands to {_count_text(size)} layers, more than "
                                    f"{MAX_LAYERS:,}", "lower a repeat's 'times' or nest fewer repeats and blocks"))
            raise SpecError(problems)
        root_scope = Scope(prefix, None)
        parser.names.used.add(root_scope.names["input"])
        layers = parser.sequence(top["layers"], root_scope)
        parser.names.check_parts()
    data, augment, train = parse_sections(top, shape, problems)
    _check_logits(top, layers, train, problems)
    if problems:
        raise SpecError(parser.hits.merged(problems))
    return Spec(name=name, input=shape, layers=layers, file=file, rounding=rounding, budget=budget,
                description=top["description"].value if "description" in top else "",
                resolved=resolved or {}, where=root.where, data=data, augment=augment, train=train)


def _check_logits(top, layers, train, problems):
    """`from_logits: true` on a network that ends in softmax or sigmoid: the loss would take
    probabilities for logits (Keras only warns, and rescues it in float32 alone). One error,
    at the key, before anything is built."""
    from ..layers.base import PROBABILITIES, output_activation
    activation = output_activation(layers) if train.from_logits is True else None
    if activation in PROBABILITIES:
        where = top["train"].value["from_logits"].where
        problems.append(Problem(where, f"true, but the network ends in {activation}: its outputs are "
                                       "probabilities, not logits",
                                "remove from_logits (auto decides from the output), or end in a layer without "
                                "activation to train on logits"))


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
    if node.is_list and len(node.value) > 100:   # said before reading (and quoting) every value of a long list
        problems.append(Problem(node.where, f"'input' must be [height, width, channels] of positive sizes, got "
                                f"{len(node.value):,} values",
                                "e.g. input: [32, 32, 3] for a colour image, [28, 28, 1] for grayscale"))
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


def expanded_size(layers: Node, blocks: dict, inside: tuple = ()) -> int:
    """How many layers a layer list becomes once its repeats and block uses are written out
    (composites count with their children), read from the YAML before anything is parsed. A
    `times` that is not yet a number (a block parameter) counts once; a block inside itself
    is left to the parser to report.

    >>> from cnnbuild.parse.source import parse_text
    >>> expanded_size(parse_text("[relu, {repeat: {times: 3, layers: [relu, {repeat: {times: 2, layers: [relu]}}]}}]"), {})
    14
    """
    total = 0
    for item in layers.value if layers.is_list else ():
        total += 1
        if not (item.is_map and len(item.value) == 1):
            continue
        kind, body = next(iter(item.value.items()))
        if kind in blocks:
            if kind not in inside:
                total += expanded_size(blocks[kind].layers, blocks, (*inside, kind))
            continue
        cls = REGISTRY.get(kind)
        if cls is None or not body.is_map:
            continue
        times = 1
        repeats = _repeats(cls)
        if repeats and repeats[2] in body.value and isinstance(body.value[repeats[2]].value, int):
            times = max(1, body.value[repeats[2]].value)
        for key in _layer_fields(cls):
            child = body.value.get(key)
            if child is not None and child.is_list:
                lists = child.value if child.value and all(b.is_list for b in child.value) else [child]
                total += times * sum(expanded_size(b, blocks, inside) for b in lists)
        if total > 10**15:   # enough to refuse, and the count stays a number any message can print
            return total
    return total


def _count_text(n: int) -> str:
    return f"{n:,}" if n < 10**15 else "more than 10¹⁵"


@functools.cache
def _layer_fields(cls) -> tuple:
    """A kind's arguments that hold layer lists or lists of branches (LayerList, BranchList)."""
    def holds_layers(annotation):
        return any(isinstance(a, (LayerList, BranchList)) or holds_layers(a) for a in typing.get_args(annotation))
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(f.name for f in dataclasses.fields(cls) if f.name in hints and holds_layers(hints[f.name]))


@functools.cache   # per kind: asked for every layer
def _repeats(cls) -> Optional[tuple]:
    """(field, listed field, count field) when a kind's field holds one parse of another
    field's layer list per repetition (its metadata says `repeats`: repeat's `copies`)."""
    for f in dataclasses.fields(cls):
        if "repeats" in f.metadata:
            return (f.name, *f.metadata["repeats"])
    return None


@functools.cache
def _files(cls) -> dict:
    """A kind's arguments that name files (their metadata says `file`: a backbone's `spec`
    and `weights`): field → what the file is ('spec', another spec; 'weights')."""
    return {f.name: f.metadata["file"] for f in dataclasses.fields(cls) if "file" in f.metadata}


def _folder(file: str) -> str:
    """The folder a spec's relative file names are read from: the spec's own (the working
    directory for a spec given as text)."""
    return str(Path(file).resolve().parent) if file and not file.startswith("<") else str(Path.cwd())


def _wanted(body: Node, scope: Scope, problems: list) -> bool:
    """A layer's `when:` (true or false, once its parameters are written in): false leaves
    the layer out, and its `name:` is remembered so that reading it is an error that says so."""
    when = body.value["when"]
    try:
        if coerce(when, bool):
            return True
    except Invalid as e:
        problems.append(Problem(when.where, f"'when' {e.message}", "when: is true or false once the parameters are "
                                "written in, e.g. when: \"${depth > 1}\" or when: $use_se"))
        return False
    name = body.value.get("name")
    if name is not None and isinstance(name.value, str):
        scope.left_out[name.value] = when.where
    return False


class _Parser:
    def __init__(self, file, blocks, problems, reading=()):
        self.file, self.blocks, self.problems = file, blocks, problems
        self.reading = reading        # the spec files being read as layers' specs, outermost first
        self.names = Names(problems)
        self.count = 0
        self.expanding: list[str] = []
        self.hits = BlockHits()    # which uses of a block ran into each problem inside it
        self.nesting = 0           # how many layer lists enclose the one being parsed
        self.too_deep = False

    def error(self, where, message, hint=""):
        self.problems.append(Problem(where, message, hint))

    def sequence(self, node: Node, scope: Scope) -> tuple:
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
            scope.reserved |= {item.value[k].value["name"].value for item in node.value if item.is_map
                               for k in item.value if item.value[k].is_map and "name" in item.value[k].value
                               and isinstance(item.value[k].value["name"].value, str)}
            return tuple(layer for layer in (self.layer(item, scope) for item in node.value) if layer is not None)
        finally:
            self.nesting -= 1

    def layer(self, node: Node, scope: Scope) -> Optional[Layer]:
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
        if body.is_map and "when" in body.value and not _wanted(body, scope, self.problems):
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
        return self.kind_layer(cls, args_node, node, scope)

    def kind_layer(self, cls, args_node: Node, node: Node, scope: Scope) -> Optional[Layer]:
        """A layer of a registered kind, from its arguments' mapping."""
        common = self.common(args_node, cls.kind, cls.merges, cls.inputs_range, scope)
        if common is None:
            return None
        name, inputs, rounding, trainable = common
        if reads_shape(args_node, COMMON_KEYS + _layer_fields(cls)):   # `${in.channels // 2}`: made when the walkers reach it (shaped.py)
            return self.shaped_layer(cls, args_node, node, name, (inputs, rounding, trainable))
        child_scope = Scope(name, scope, f"{cls.kind} '{name}'")   # inside a composite, `input` is its input
        before = len(self.problems)
        repeats = _repeats(cls)
        self.names.building.add(name)   # its children cannot read it: it has no output until they are done
        try:
            if repeats:
                args = self.repeated(cls, args_node, child_scope, *repeats)
            else:
                args = parse_fields(cls, args_node, self.problems,
                                    layer_parser=lambda n, label: self.sequence(n, child_scope) if n.value else (),
                                    skip=COMMON_KEYS)
        finally:
            self.names.building.discard(name)
        if args is None or len(self.problems) > before:
            return None
        for ref in cls.refs:
            target = self.names.reference(getattr(args, ref), args_node.value[ref].where, scope, exclude=name)
            if target is None:
                return None
            if target == name:   # its own name is already in scope, but it has no output yet
                self.error(args_node.value[ref].where, f"'{ref}: {getattr(args, ref)}' names this layer itself",
                           "name an earlier layer")
                return None
            args = dataclasses.replace(args, **{ref: target})
        if _files(cls):
            try:
                args = self.with_files(args, name)
            except Invalid as e:
                self.error(args_node.where, f"{cls.kind} '{name}': {e.message}", e.hint)
                return None
        self.names.parts[name] = args.parts()
        return Layer(args, name, inputs, node.where, rounding, trainable)

    def shaped_layer(self, cls, args_node: Node, node: Node, name: str, common: tuple) -> Optional[Layer]:
        """A layer whose own arguments read the incoming tensor's shape; not a composite's, nor
        an argument naming a layer or a file."""
        inputs, rounding, trainable = common
        if _layer_fields(cls) or cls.refs or _files(cls):
            self.error(reads_shape(args_node, COMMON_KEYS + _layer_fields(cls))[0].where, f"{cls.kind}'s arguments cannot read the incoming "
                       "shape (in.…)", "use in.height, in.width and in.channels in the arguments of the layers inside it")
            return None
        args = shaped(cls, args_node, COMMON_KEYS, self.problems)
        if args is None:
            return None
        self.names.parts[name] = args.parts()
        return Layer(args, name, inputs, node.where, rounding, trainable)

    def common(self, args_node: Node, kind: str, merges: bool, inputs_range: tuple, scope: Scope):
        """name, inputs / with, rounding, trainable: keys every layer may carry, for a layer
        of `kind` that reads `inputs_range` inputs (and accepts `with:` if it `merges`).
        (unique name, inputs, rounding, trainable), or None after a problem."""
        values = args_node.value
        local, ok = self.names.local(values, kind, scope)
        if scope.qualify(local) in self.names.used and ok:
            self.error(args_node.where, f"layer name '{scope.qualify(local)}' is already taken", "rename one of the layers")
            ok = False
        inputs = ()
        if "inputs" in values and "with" in values:
            self.error(values["with"].where, "give either 'inputs' or 'with', not both", "'inputs' lists every input; 'with' joins named layers to the previous one: keep one")
            ok = False
        for key in ("inputs", "with"):
            if key not in values:
                continue
            if key == "with" and not merges:
                self.error(args_node.key_where("with"), f"'with' is for concat, add and multiply, not {kind}",
                           "use 'inputs: [name]' to read another layer")
                ok = False
                continue
            try:
                refs = coerce(values[key], tuple[str, ...])
            except Invalid as e:
                self.error(values[key].where, f"'{key}' {e.message}", "list layer names, e.g. [conv_1, pool_2]")
                ok = False
                continue
            resolved = [self.names.reference(ref, values[key].where, scope) for ref in refs]
            ok = ok and None not in resolved
            inputs = tuple(resolved) if key == "inputs" else (PREVIOUS, *resolved)
        count = len(inputs) or 1
        low, high = inputs_range
        if ok and not low <= count <= high:
            if low > 1 and low == high:   # a block that declares its inputs
                self.error(args_node.where, f"{kind} reads {low} inputs, got {count}",
                           f"list them in the order the block declares them: inputs: [{', '.join(['…'] * low)}]")
            elif low > 1:
                self.error(args_node.where, f"{kind} joins at least {low} inputs, got {count}",
                           "add `with: [name]` (joined to the previous layer) or `inputs: [a, b]`")
            elif kind in self.blocks:
                self.error(args_node.where, f"{kind} reads one input, got {count}",
                           f"declare the block's inputs (blocks: {{{kind}: {{inputs: [a, b], …}}}}), or join layers first with concat or add")
            else:
                self.error(args_node.where, f"{kind} reads one input, got {count}", "use concat or add to join layers first")
            ok = False
        rounding, rounding_ok = self._flag(values, "rounding", Literal["exact", "floor"], None)
        trainable, trainable_ok = self._flag(values, "trainable", bool, True)
        name = self.names.take(local, args_node.where, scope)
        return (name, inputs, rounding, trainable) if ok and rounding_ok and trainable_ok else None

    def _flag(self, values, key, annotation, default):
        """A common key's value (its default when absent), and whether it is valid."""
        if key not in values:
            return default, True
        try:
            return coerce(values[key], annotation), True
        except Invalid as e:
            self.error(values[key].where, f"'{key}' {e.message}", e.hint)
            return default, False

    def repeated(self, cls, args_node: Node, scope: Scope, into: str, listed: str, count: str):
        """A kind whose field `into` holds the layer list `listed` parsed once per repetition
        (`count` of them), with `$index` = 1, 2, …; each copy has a scope of its own."""
        values = args_node.value
        times = None
        if count in values:
            try:
                times = coerce(values[count], int)
                Range(0, MAX_LAYERS).check(times)
            except Invalid as e:
                self.error(values[count].where, f"'{count}' {e.message}", e.hint)
                return None
        unparsed = Node({k: v for k, v in values.items() if k != listed} | {listed: Node([], args_node.where)},
                        args_node.where, args_node.keys)
        args = parse_fields(cls, unparsed, self.problems, layer_parser=lambda n, label: (), skip=COMMON_KEYS)
        layers = values.get(listed)
        if args is None or layers is None:
            return None
        if not layers.is_list or not layers.value:
            self.error(layers.where, f"'{listed}' must be a non-empty list of layers", "e.g. layers: [{conv: {filters: 8, kernel: 3}}]")
            return None
        copies = []
        for i in range(1, times + 1):
            body = substituted(layers, {INDEX: i}, self.problems, keep=())
            if body is None:
                return None
            copies.append(self.sequence(body, Scope(scope.qualify(str(i)), scope, scope.owner)))   # `input`: this repetition's
            if self.count > MAX_LAYERS:
                return None
        return dataclasses.replace(args, **{into: tuple(copies)})

    def block_use(self, kind: str, body: Node, node: Node, scope: Scope) -> Optional[Layer]:
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
        values = use_values(kind, block, args_node, COMMON_KEYS, self.problems)
        count = len(block.inputs)   # a block use reads as many inputs as the block declares (one unless `inputs:`)
        common = self.common(args_node, kind, False, (count, count), scope)
        if values is None or common is None:
            return None
        name, inputs, rounding, trainable = common
        before = len(self.problems)
        layers = substituted(block.layers, values, self.problems, keep=(INDEX,))
        if layers is None:
            self.hits.add(kind, name, node.where, self.problems[before:])
            return None
        inner = Scope(name, scope, f"block '{kind}' (used as '{name}')")
        # inside a block, `input` is the use's (first) input; declared inputs are the use's, in order
        for i, local in enumerate(block.inputs):
            inner.names[local] = inputs[i] if inputs and inputs[i] != PREVIOUS else inner.names["input"]
        self.expanding.append(kind)
        self.names.building.add(name)
        before = len(self.problems)
        try:
            children = self.sequence(layers, inner)
        finally:
            self.expanding.pop()
            self.names.building.discard(name)
            self.hits.add(kind, name, node.where, self.problems[before:])
        use = BlockUse(block=kind, values=tuple(sorted((k, frozen(v)) for k, v in values.items())), layers=children)
        return Layer(use, name, inputs, node.where, rounding, trainable)

    def with_files(self, args, name: str):
        """A kind whose arguments name files, given the folder they are read from; a spec it
        names is read here, its layers' names prefixed with this layer's `name` so they stay
        unique, and also as written when a weights file was saved from it (the builder loads
        the file into that spec's own model). Raises Invalid."""
        folder = _folder(self.file)
        named = {role: getattr(args, key) for key, role in _files(type(args)).items()}
        written = named.get("spec")
        # a keras.applications backbone reads its network's zoo spec (package data), for its rows
        path = Path(folder, written).resolve() if written is not None else args.zoo_file()
        if path is None:
            return args.with_files(folder)
        saved_from = written is not None and named.get("weights") is not None   # a zoo spec's weights are Keras's
        written = written or path.name
        if str(path) in self.reading:
            raise Invalid(f"spec {written} is its own backbone ({' → '.join(Path(p).name for p in self.reading)} → "
                          f"{path.name})", "a backbone spec cannot contain itself")
        reading = (*self.reading, str(path))
        try:
            root = load(path)
            spec = from_node(root, prefix=name, reading=reading)
            source = from_node(root, reading=reading) if saved_from else None
        except UsageError as e:
            raise Invalid(f"spec {written}: {e}", f"the path is read from {folder}") from None
        except SpecError as e:
            self.problems.extend(e.problems)
            raise Invalid(f"spec {written} has {len(e.problems)} error{'s' if len(e.problems) != 1 else ''} (above)",
                          f"fix that spec first: cnnbuild check {path}") from None
        return args.with_files(folder, spec, source)

    def _kind_hint(self, kind):
        known = sorted(REGISTRY) + sorted(self.blocks)
        lowered = kind.lower()
        if lowered in OTHER_NAMES:
            meant, keras = OTHER_NAMES[lowered]
            whose = " ('{kind}' is Keras's name)" if keras else ""
            return f"did you mean '{meant}'?{whose}".replace("{kind}", kind)
        return did_you_mean(kind, known)
