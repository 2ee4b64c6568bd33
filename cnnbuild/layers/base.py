"""What every layer kind shares: the registry, the static tensor, and the windowed-op rule.

A kind is a frozen dataclass (its fields are its YAML arguments) registered by name with
`@register("conv")`. It implements:
  infer(ins, ctx) -> Out     the static rule: output shape, rule text, params, MACs
  build(ins, ctx) -> tensor  the Keras construction (Keras is imported inside)
Composite kinds also implement `children()` and call `ctx.run(...)` for their sub-layers.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

from .. import shapes
from ..errors import Invalid, Where

REGISTRY: dict[str, type] = {}


def register(name: str):
    def add(cls):
        if name in REGISTRY:
            raise ValueError(f"layer kind '{name}' is registered twice")
        cls.kind = name
        REGISTRY[name] = cls
        return cls
    return add


@dataclass(frozen=True)
class Tensor:
    """A tensor as the checker sees it: shape without the batch axis, and the receptive
    field (rows, columns of the input image) of one element with the spacing between
    neighbouring elements in input pixels (`jump`)."""

    shape: tuple
    rf: tuple = (1, 1)
    jump: tuple = (1.0, 1.0)

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3


@dataclass
class Out:
    """What `infer` returns for one layer: `params` are its trainable parameters and
    `non_trainable` the rest (batchnorm's moving statistics). `window` = (kh, kw, sh, sw) grows the receptive
    field; `whole` marks a layer that sees the whole input (flatten, dense, global pool)."""

    shape: tuple
    rule: str = ""
    params: int = 0
    non_trainable: int = 0
    macs: int = 0
    window: tuple | None = None
    whole: bool = False
    upsample: tuple | None = None
    merged: list | None = None   # composites: the tensors they joined (for the receptive field)


@dataclass(frozen=True)
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

    def children(self) -> list:
        """(label, layers) pairs for composites; label is for display paths."""
        return []

    def infer(self, ins, ctx) -> Out:
        raise NotImplementedError

    def build(self, ins, ctx):
        raise NotImplementedError


Activation = Literal[
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "swish", "silu", "sigmoid",
    "hard_sigmoid", "hard_swish", "tanh", "softmax", "softplus", "softsign", "mish"]
Initializer = Literal[
    "glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform",
    "random_normal", "random_uniform", "truncated_normal", "zeros", "ones", "orthogonal"]
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
    sizes, rules = [], []
    for axis, (n, f, s, p, d) in enumerate(zip((h, w), kernel, stride, pads, dilation)):
        value, rule = shapes.window_output(n, f, s, p[0] + p[1], d)
        label = ("height", "width")[axis]
        if value < 1:
            raise Invalid(f"{what} {label} would be {rule.split('= ')[-1]}: the {shapes.effective_kernel(f, d)}-wide window "
                          f"does not fit in {n}{' + padding ' + str(p[0] + p[1]) if p[0] + p[1] else ''}",
                          "use a smaller kernel, add padding, or remove a downsampling layer before this one")
        if value.denominator != 1:
            if ctx.rounding == "floor":
                drop = shapes.floor_drop(n, f, s, p[0] + p[1], d)
                ctx.warn(f"{label}: {rule}; rounding: floor keeps {int(value)} and leaves "
                         f"{drop} {'row' if axis == 0 else 'column'}{'s' if drop != 1 else ''} unread")
            else:
                fixes = shapes.fixes_for_whole(n, f, s, p[0] + p[1], d)
                drop = shapes.floor_drop(n, f, s, p[0] + p[1], d)
                fixes.append(f"or rounding: floor drops {drop} {'row' if axis == 0 else 'column'}{'s' if drop != 1 else ''}")
                ctx.error(f"{what} {label} is not a whole number: {rule}: the filter cannot be applied evenly",
                          "; ".join(fixes))
        sizes.append(int(value))
        rules.append(rule)
    rule = rules[0] if rules[0] == rules[1] else f"{rules[0]} × {rules[1]}"
    return sizes[0], sizes[1], rule, pads


def fields_of(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
