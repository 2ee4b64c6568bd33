"""What every layer kind shares: the registry, the static tensor, and the windowed-op rule.

A kind is a frozen dataclass (its fields are its YAML arguments) registered by name with
`@register("conv")`. It implements:
  infer(ins, ctx) -> Out     the static rule: output shape, rule text, params, MACs
  build(ins, ctx) -> tensor  the Keras construction (Keras is imported inside)
Composite kinds also implement `children()` and call `ctx.run(...)` for their sub-layers.
What `ctx` holds in each (the check's walker, the builder's walker) is stated in walk.py.

Everything the other stages ask about one kind is asked of the kind (`Kind` below lists
the questions with their defaults), so no module outside layers/ names a kind:
  keeps_range          its output values lie within its input's (a reshape, a crop, a pool)
  output_activation()  the activation function its output comes from last ('tanh', 'softmax')
  upsampling()         (argument, factor) when one argument enlarges height and width alike
  needs_flat_input     meant for a vector: on a map it acts on each position alone
  rule_in_full         its rule text is a caveat the table shows whole, under the table
  keras_names, aliases the Keras class names and the other words users type for it
  activation_hint      what to say when its name is written as an `activation:` value
`output_activation(layers)` answers for a whole layer list, from these facts.
"""
from __future__ import annotations

import typing
from typing import ClassVar, Literal, Optional, Union

from . import shapes
from ..errors import Invalid, Where
from ..records import record

REGISTRY: dict[str, type] = {}
PROBABILITIES = ("softmax", "sigmoid")   # the output activations that give probabilities, not logits


def register(name: str):
    """Register a kind under `name`: the class, a frozen keyword-only dataclass generated on
    first use (fields.record), so a check generates only the kinds its spec uses."""
    def add(cls):
        if name in REGISTRY:
            raise ValueError(f"layer kind '{name}' is registered twice")
        cls.kind = name
        REGISTRY[name] = record(frozen=True, kw_only=True)(cls)
        return cls
    return add


@record(frozen=True)
class Tensor:
    """A tensor as the checker sees it: shape without the batch axis, and the receptive
    field (rows, columns of the input image) of one element, the largest over positions.
    `spans`: per axis (height, width), which image rows or columns each element reads
    (check/report.py's Span). `whole`: every element depends on the whole image (after a
    global pool, flatten or dense, or a merge with such a tensor)."""

    shape: tuple
    rf: tuple = (1, 1)
    spans: tuple = ()
    whole: bool = False

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3


@record()
class Out:
    """What `infer` returns for one layer: `params` are its trainable parameters and
    `non_trainable` the rest (batchnorm's moving statistics). `window` = (kh, kw, sh, sw) grows the receptive
    field, read from `offset` = (top, left) rows and columns before the input (its padding);
    `upsample` = (sh, sw) spreads the input, each output element reading the input elements
    `taps` says: 'nearest' (one), 'bilinear' (the two nearest), or a transposed convolution's
    ((kh, dh, top), (kw, dw, left)); `whole` marks a layer that sees the whole input (flatten,
    dense, global pool)."""

    shape: tuple
    rule: str = ""
    params: int = 0
    non_trainable: int = 0
    macs: int = 0
    window: tuple | None = None
    offset: tuple = (0, 0)
    whole: bool = False
    upsample: tuple | None = None
    taps: object = "nearest"
    merged: list | None = None   # composites: the tensors they joined (for the receptive field)
    # (trainable, non_trainable) of the whole layer, its children's included, where the kind counts
    # them itself: an application backbone frozen by Keras layers, which split a child's parameters
    counts: tuple | None = None


@record(frozen=True)
class Layer:
    """One layer of a spec: its kind's arguments plus where it sits in the graph.

    `name` is unique in the whole model (composites prefix their children's names);
    `inputs` are the unique names it reads, or () for the previous layer's output."""

    args: object
    name: str
    inputs: tuple
    where: Where
    rounding: str | None = None
    trainable: bool = True

    @property
    def kind(self) -> str:
        return self.args.kind


class Kind:
    """Defaults for a kind; subclasses are frozen dataclasses."""

    kind: ClassVar[str] = ""
    main: ClassVar[str | None] = None       # the argument a bare scalar stands for
    inputs_range: ClassVar[tuple] = (1, 1)  # how many inputs it reads
    merges: ClassVar[bool] = False          # accepts `with:`
    refs: ClassVar[tuple] = ()              # arguments that name another layer (max_unpool's pool)
    family: ClassVar[str] = "plain"         # the drawing's colour: convolution, pool, fully_connected, merge, shape or plain

    # ── what the other stages ask of a kind (see the module's docstring)
    keeps_range: ClassVar[bool] = False     # output values lie within the input's: the range of what came before
    needs_flat_input: ClassVar[bool] = False   # meant for a vector: on a map it acts per position (Keras's Dense)
    rule_in_full: ClassVar[bool] = False    # the rule is a caveat (what is counted), shown whole under the table
    keras_names: ClassVar[tuple] = ()       # keras.layers class names users write for this kind ('Conv2D')
    aliases: ClassVar[tuple] = ()           # other words users write for it: PyTorch's ('linear'), everyday ones
    activation_hint: ClassVar[str] = ""     # the hint when the kind's name is written as an `activation:` value

    def output_activation(self) -> str | None:
        """The activation function this layer applies last to its output ('relu', 'tanh',
        'softmax', …); None when it applies none ('linear' is none). A composite answers for
        the layers its output comes from."""
        return None

    def upsampling(self) -> tuple | None:
        """(argument, factor) when this layer enlarges height and width alike by `factor` > 1,
        set by that one argument (upsample's size, conv_transpose's stride); None otherwise."""
        return None

    # ── what the drawing (views/draw) asks of a kind
    def label(self) -> str:
        """The drawing's title for a layer of this kind: the kind with the numbers that matter."""
        return self.kind

    def details(self) -> list:
        """What the layer adds that the drawing names under the title (batchnorm, an activation)."""
        return []

    def freeze_note(self) -> str:
        """What of the layer its own arguments freeze, for the drawing ('' for nothing)."""
        return ""

    def drawing(self, layer, view):
        """How the drawing shows `layer`: a box; composites answer with their structure."""
        return view.box(layer)

    def children(self) -> list:
        """(label, layers) pairs for composites; label is for display paths."""
        return []

    def parts(self) -> frozenset:
        """The extra Keras layers (from PARTS) a layer of this kind may build beside its own,
        named part_name(name, part): a user's layer may not take one of those names."""
        return frozenset()

    def used_block(self) -> str | None:
        """The name of the user block (under `blocks:`) this layer is a use of; None for a built-in kind."""
        return None

    def infer(self, ins, ctx) -> Out:
        raise NotImplementedError

    def build(self, ins, ctx):
        raise NotImplementedError


def output_activation(layers) -> str | None:
    """The activation a layer list's output last went through ('tanh', 'softmax', …), looking
    back through layers that keep their input's range (a reshape, a crop, a pool) and into
    composites; None when it ends in a linear layer or a merge (logits).

    >>> from . import REGISTRY
    >>> dense, tanh, flatten = REGISTRY["dense"](units=4), REGISTRY["tanh"](), REGISTRY["flatten"]()
    >>> output_activation([Layer(d, "l", (), None) for d in (dense, tanh, flatten)])
    'tanh'
    >>> output_activation([Layer(d, "l", (), None) for d in (tanh, dense)]) is None
    True
    """
    for layer in reversed(layers):
        activation = layer.args.output_activation()
        if activation is not None or not layer.args.keeps_range:
            return activation
    return None


def own_activation(activation) -> str | None:
    """A kind's `activation` argument as `output_activation` gives it: None for none or linear."""
    return None if activation in (None, "linear") else activation


Activation = Literal[
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "swish", "silu", "sigmoid",
    "hard_sigmoid", "hard_swish", "tanh", "softmax", "softplus", "softsign", "mish"]
# The extra Keras layers one spec layer may become are named after it: conv 'c' with batchnorm
# and relu builds 'c', 'c_bn', 'c_relu'. The spec parser refuses user names of that form.
PARTS = frozenset(("bn", "pad", "add", "shortcut", "avg", "preprocess", "drop", "scale", *typing.get_args(Activation)))


def part_name(name: str, part: str) -> str:
    """The Keras name of one extra piece of spec layer `name`."""
    if part not in PARTS:
        raise ValueError(f"layer part {part!r} is not in PARTS")
    return f"{name}_{part}"


InitializerName = Literal[
    "glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform",
    "random_normal", "random_uniform", "truncated_normal", "zeros", "ones", "orthogonal"]

# each initializer's arguments (Keras's names and defaults); any other is refused
INITIALIZER_ARGUMENTS = {
    "variance_scaling": ("scale", "mode", "distribution", "seed"), "constant": ("value",),
    "random_normal": ("mean", "stddev", "seed"), "truncated_normal": ("mean", "stddev", "seed"),
    "random_uniform": ("minval", "maxval", "seed")}


@record(frozen=True, kw_only=True)
class InitializerArgs:
    """An initializer with arguments, as Keras's of that name takes them:
    `{name: variance_scaling, scale: 2.0, mode: fan_out, distribution: truncated_normal}`
    (EfficientNet's convolutions), `{name: constant, value: 0.5}`.

    Attributes:
      name: variance_scaling, constant, random_normal, truncated_normal, random_uniform, or a plain initializer's name.
      scale, mode, distribution: variance_scaling's (Keras: 1.0, fan_in, truncated_normal).
      value: constant's.
      mean, stddev: random_normal's and truncated_normal's (Keras: 0.0, 0.05).
      minval, maxval: random_uniform's (Keras: −0.05, 0.05).
      seed: for the random ones.
    """

    name: Literal[InitializerName, "variance_scaling", "constant"]
    scale: Optional[float] = None
    mode: Optional[Literal["fan_in", "fan_out", "fan_avg"]] = None
    distribution: Optional[Literal["truncated_normal", "untruncated_normal", "uniform"]] = None
    value: Optional[float] = None
    mean: Optional[float] = None
    stddev: Optional[float] = None
    minval: Optional[float] = None
    maxval: Optional[float] = None
    seed: Optional[int] = None

    def __post_init__(self):
        allowed = INITIALIZER_ARGUMENTS.get(self.name, ())
        for key in ("scale", "mode", "distribution", "value", "mean", "stddev", "minval", "maxval", "seed"):
            if getattr(self, key) is not None and key not in allowed:
                raise Invalid(f"initializer {self.name} takes no '{key}'",
                              f"{self.name} takes {', '.join(allowed)}" if allowed else f"write initializer: {self.name} alone",
                              field=key)
        if self.scale is not None and self.scale <= 0:
            raise Invalid(f"variance_scaling's scale must be positive, got {self.scale}", "e.g. scale: 2.0", field="scale")

    def arguments(self) -> dict:
        """The arguments given, by Keras's names."""
        return {key: getattr(self, key) for key in INITIALIZER_ARGUMENTS.get(self.name, ()) if getattr(self, key) is not None}


Initializer = Union[InitializerArgs, InitializerName]   # a word is reported against the names (the last tried)
PaddingMode = Literal["zeros", "reflect", "symmetric"]


def need_spatial(t: Tensor, what: str) -> tuple:
    if not t.spatial:
        raise Invalid(f"{what} needs a height × width × channels input, got shape {list(t.shape)}",
                      "put it before 'flatten' / 'dense', or 'reshape' to [H, W, C] first")
    return t.shape


def window(ins_shape, kernel, stride, padding, dilation, ctx, what="output"):
    """Output height and width of a sliding-window op (conv or pool), with the rule text and
    the explicit padding used. Follows the seeds' (N − F + 2P)/S + 1; a fraction is an error
    unless rounding is floor; 'same' is Keras's ceil(N/S)."""
    h, w, _ = ins_shape
    if padding == "same":
        oh, ow = shapes.same_output(h, stride[0]), shapes.same_output(w, stride[1])
        ph = shapes.same_padding(h, kernel[0], stride[0], dilation[0])
        pw = shapes.same_padding(w, kernel[1], stride[1], dilation[1])
        rule = f"same: ⌈{h}/{stride[0]}⌉ = {oh}, pads {ph[0]}+{ph[1]}"
        if (h, stride[0], ph) != (w, stride[1], pw):
            rule += f" × ⌈{w}/{stride[1]}⌉ = {ow}, pads {pw[0]}+{pw[1]}"
        return oh, ow, rule, (ph, pw)
    pads = ((0, 0), (0, 0)) if padding == "valid" else padding
    axes = list(zip((h, w), kernel, stride, pads, dilation))
    values, rules = [], []
    for axis, (n, f, s, p, d) in enumerate(axes):
        value, rule = shapes.window_output(n, f, s, p[0] + p[1], d)
        if value < 1:
            raise Invalid(f"{what} {AXES[axis]} would be {rule.split('= ')[-1]}: the {shapes.effective_kernel(f, d)}-wide window "
                          f"does not fit in {n}{' + padding ' + str(p[0] + p[1]) if p[0] + p[1] else ''}",
                          channels_first_hint(ctx.image)
                          or "use a smaller kernel, add padding, or remove a downsampling layer before this one")
        values.append(value)
        rules.append(rule)
    fractional = [axis for axis in (0, 1) if values[axis].denominator != 1]
    # height and width that fail with the same numbers are one finding, not two alike
    for group in [fractional] if len(fractional) == 2 and axes[0] == axes[1] else [[axis] for axis in fractional]:
        _not_whole(group, axes, values[group[0]], rules[group[0]], pads, stride, ctx, what)
    rule = rules[0] if rules[0] == rules[1] else f"{rules[0]} × {rules[1]}"
    return int(values[0]), int(values[1]), rule, pads   # int() floors, as rounding: floor keeps


AXES = ("height", "width")
CHANNELS = (1, 3, 4)    # grayscale, RGB, RGBA


def channels_first_hint(image) -> str:
    """The hint for an input written channels first, as PyTorch orders it ([1, 28, 28]):
    cnnbuild, like Keras, reads [height, width, channels].

    >>> channels_first_hint((1, 28, 28))
    'the input [1, 28, 28] looks channels-first; cnnbuild, like Keras, is channels-last: write input: [28, 28, 1]'
    >>> channels_first_hint((28, 28, 1)), channels_first_hint((3, 3, 3))
    ('', '')
    """
    if not image or len(image) != 3:
        return ""
    channels, height, width = image
    if channels in CHANNELS and min(height, width) > 4 and width not in CHANNELS:
        return (f"the input {list(image)} looks channels-first; cnnbuild, like Keras, is channels-last: "
                f"write input: [{height}, {width}, {channels}]")
    return ""
LINES = ("row", "column")


def _not_whole(group, axes, value, rule, pads, strides, ctx, what):
    """A fractional output size on the axes in `group` (two when they fail alike): a warning
    under rounding: floor, else an error whose hint lists changes that make it whole."""
    n, f, s, p, d = axes[group[0]]
    label = " and ".join(AXES[axis] for axis in group)
    drop = shapes.floor_drop(n, f, s, p[0] + p[1], d)
    dropped = " and ".join(f"{drop} {LINES[axis]}{'s' if drop != 1 else ''}" for axis in group)
    if ctx.rounding == "floor":
        ctx.warn(f"{label}: {rule}; rounding: floor keeps {int(value)} and leaves {dropped} unread")
        return
    fixes = []
    for pad in shapes.whole_paddings(n, f, s, p, d):
        padding = tuple(pad if axis in group else pads[axis] for axis in (0, 1))
        fixes.append(f"padding: {padding_text(padding)} gives {shapes.window_output(n, f, s, sum(pad), d)[0]}")
    fixes.append(f"padding: same gives ⌈{n}/{s}⌉ = {shapes.same_output(n, s)}")
    for stride in shapes.whole_strides(n, f, s, p[0] + p[1], d):
        changed = tuple(stride if axis in group else strides[axis] for axis in (0, 1))
        fixes.append(f"stride: {pair_text(changed)} gives {shapes.window_output(n, f, stride, p[0] + p[1], d)[0]}")
    fixes.append(f"or rounding: floor drops {dropped}")
    verb = "are not whole numbers" if len(group) == 2 else "is not a whole number"
    ctx.error(f"{what} {label} {verb}: {rule}: the filter cannot be applied evenly", "; ".join(fixes))


def pair_text(pair) -> str:
    """An [h, w] argument as a spec writes it: (2, 2) → '2', (1, 2) → '[1, 2]'."""
    return str(pair[0]) if pair[0] == pair[1] else f"[{pair[0]}, {pair[1]}]"


def padding_text(pads) -> str:
    """((top, bottom), (left, right)) as a spec writes it: the shortest of P, [ph, pw] and
    [[top, bottom], [left, right]].

    >>> padding_text(((1, 1), (1, 1))), padding_text(((1, 1), (0, 0))), padding_text(((0, 1), (0, 1)))
    ('1', '[1, 0]', '[[0, 1], [0, 1]]')
    """
    (top, bottom), (left, right) = pads
    if top == bottom and left == right:
        return pair_text((top, left))
    return f"[[{top}, {bottom}], [{left}, {right}]]"
