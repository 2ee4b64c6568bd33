"""Composites: inception, residual, repeat, and uses of user blocks. They hold child
layers (parsed by the spec parser into their own name scope) and run them with `ctx.run`."""
from __future__ import annotations

from dataclasses import field
from typing import Literal, Optional, Union

from ..records import record
from ..errors import Invalid
from ..fields import Branches, Fraction01, Layers, NonNegativeInt
from .base import Activation, Kind, Layer, Out, output_activation, own_activation, part_name, register
from .conv import Conv
from .keras_parts import activation_layer


@register("inception")
class Inception(Kind):
    """Parallel branches from the same input, concatenated on channels (GoogLeNet).

    Attributes:
      branches: a list of layer lists; every branch must give the same height × width.
        An empty branch ([]) passes the input through (a DenseNet layer).
    """

    branches: Branches
    family = "merge"

    def __post_init__(self):
        if not self.branches:     # found by bench/fuzz.py: an inception of nothing has no output
            raise Invalid("an inception needs at least one branch", "e.g. branches: [[conv: …], [max_pool: …]]",
                          field="branches")

    def children(self):
        return [(f"branches[{i}]", b) for i, b in enumerate(self.branches)]

    def drawing(self, layer, view):
        """The branches side by side, joined by a concat."""
        return view.branches(layer, self.branches)

    def infer(self, ins, ctx):
        outs = [ctx.run(branch, ins[0], f"branches[{i}]") for i, branch in enumerate(self.branches)]
        if any(o is None for o in outs):
            return None
        sizes = {o.shape[:-1] for o in outs}
        if len(sizes) > 1:
            listing = "; ".join(f"branch {i}: {list(o.shape)}" for i, o in enumerate(outs))
            raise Invalid(f"branches give different sizes ({listing})",
                          "use padding: same (or the same strides) in every branch so heights and widths agree")
        channels = sum(o.shape[-1] for o in outs)
        return Out((*outs[0].shape[:-1], channels), " + ".join(str(o.shape[-1]) for o in outs) + f" = {channels} channels",
                   merged=outs)

    def build(self, ins, ctx):
        outs = [ctx.run(branch, ins[0]) for branch in self.branches]
        return ctx.keras.layers.Concatenate(name=ctx.name)(outs)


@register("residual")
class Residual(Kind):
    """A residual block: a(k+2) = g(shortcut + scale · body); the shortcut skips the body.

    Attributes:
      body: the layers on the main path.
      shortcut: 'auto' (identity when shapes agree, else a strided 1×1 projection, with
        batchnorm when the body uses it), 'identity', or a list of layers.
      activation: g, applied after the sum.
      scale: the body's factor before the sum (InceptionResNetV2: 0.17, 0.1, 0.2; default 1).
      drop_path: stochastic depth: while training, each sample's body is dropped with this
        probability and kept ones scaled by 1/(1 − p) (Keras's Dropout with noise_shape
        (N, 1, 1, 1), as EfficientNet builds it); at inference, and in every export, nothing is dropped.
    """

    body: Layers
    shortcut: Union[Literal["auto", "identity"], Layers] = "auto"
    activation: Optional[Activation] = None
    scale: float = 1.0
    drop_path: Fraction01 = 0.0
    family = "merge"

    def drawing(self, layer, view):
        """The body in the column, the shortcut beside it (its layers, or shortcut: auto's
        projection where the checker made one), joined by an add."""
        return view.skip(layer, self.body, self.shortcut if isinstance(self.shortcut, tuple) else None, self.activation)

    def output_activation(self):
        return own_activation(self.activation)   # else the sum's: linear

    def parts(self):
        parts = {"add"} if self.activation not in (None, "linear") else set()
        parts |= {"shortcut"} if self.shortcut == "auto" else set()
        parts |= {"drop"} if self.drop_path else set()
        return frozenset(parts | ({"scale"} if self.scale != 1.0 else set()))

    def children(self):
        out = [("body", self.body)]
        if isinstance(self.shortcut, tuple):
            out.append(("shortcut", self.shortcut))
        return out

    @staticmethod
    def shortcut_stride(input_shape, body_shape) -> int:
        """The (height, width) stride of shortcut: auto's 1×1 projection from the block's input
        to the body's output (shapes without the batch axis): per axis, the ratio of the sizes,
        rounded (ResNet halves both sides at once; a 1×2 input to a 1×1 body needs [1, 2]).

        >>> Residual.shortcut_stride((56, 56, 64), (28, 28, 128)), Residual.shortcut_stride((7, 7, 4), (4, 4, 8))
        ((2, 2), (2, 2))
        >>> Residual.shortcut_stride((1, 2, 4), (1, 1, 8))
        (1, 2)
        """
        return tuple(max(1, round(n / m)) for n, m in zip(input_shape[:2], body_shape[:2]))

    def shortcut_layers(self, layer, input_shape, body_shape) -> tuple:
        """The layers on the shortcut of `layer` (this block) when its input and its body's
        output have these shapes (no batch axis): the spec's own, shortcut: auto's projection,
        or () for the identity."""
        if isinstance(self.shortcut, tuple):
            return self.shortcut
        if self.shortcut == "identity" or tuple(body_shape) == tuple(input_shape):
            return ()
        if len(input_shape) != 3 or len(body_shape) != 3:
            raise Invalid(f"shortcut: auto cannot project {list(input_shape)} to {list(body_shape)}",
                          "give the shortcut as a list of layers")
        stride = self.shortcut_stride(input_shape, body_shape)
        if tuple((n - 1) // s + 1 for n, s in zip(input_shape[:2], stride)) != tuple(body_shape[:2]):
            raise Invalid(f"shortcut: auto cannot reach {body_shape[0]}×{body_shape[1]} from "
                          f"{input_shape[0]}×{input_shape[1]} with a strided 1×1 convolution",
                          "give the shortcut as a list of layers")
        return projection(layer, self, body_shape[-1], stride)

    def infer(self, ins, ctx):
        x = ins[0]
        body = ctx.run(self.body, x, "body")
        if body is None:
            return None
        shortcut = self.shortcut_layers(ctx.layer, x.shape, body.shape)
        short = ctx.run(shortcut, x, "shortcut") if shortcut else x
        if short is None:
            return None
        if short.shape != body.shape:
            raise Invalid(f"body gives {list(body.shape)} but the shortcut gives {list(short.shape)}",
                          "use shortcut: auto (a 1×1 projection), or make the body keep the shape")
        rule = "body + shortcut" if self.scale == 1.0 else f"shortcut + {self.scale:g}·body"
        if self.drop_path:
            rule += f", body dropped with p = {self.drop_path:g} while training"
        return Out(body.shape, rule, merged=[body, short])

    def build(self, ins, ctx):
        x = ins[0]
        body = ctx.run(self.body, x)
        shortcut = self.shortcut_layers(ctx.layer, ctx.shape(x), ctx.shape(body))
        short = ctx.run(shortcut, x) if shortcut else x
        layers = ctx.keras.layers
        if self.drop_path:   # a whole sample's body at once: the noise is 1 on every other axis
            body = layers.Dropout(self.drop_path, noise_shape=(None, *[1] * (len(body.shape) - 1)),
                                  name=part_name(ctx.name, "drop"))(body)
        if self.scale != 1.0:
            body = layers.Rescaling(self.scale, name=part_name(ctx.name, "scale"))(body)
        if not self.activation or self.activation == "linear":
            return ctx.keras.layers.Add(name=ctx.name)([body, short])
        out = ctx.keras.layers.Add(name=part_name(ctx.name, "add"))([body, short])
        return activation_layer(ctx, self.activation, ctx.name)(out)


def projection(layer, residual, channels: int, stride: tuple) -> tuple:
    """shortcut: auto's projection: a 1×1 convolution with the body's stride, with batchnorm
    when the body's convolutions use it (ResNet's projection shortcut)."""
    convs = [child.args for child in residual.body if hasattr(child.args, "batchnorm")]
    batchnorm = next((c.batchnorm for c in convs if c.batchnorm), False)
    bias = convs[0].bias if convs else True
    # 'same' on a 1×1 kernel pads nothing and gives ⌈N/S⌉, the size a 'same' body gives
    conv = Conv(filters=channels, kernel=(1, 1), stride=tuple(stride), padding="same", bias=bias, batchnorm=batchnorm)
    return (Layer(conv, part_name(layer.name, "shortcut"), (), layer.where, trainable=layer.trainable),)


@register("repeat")
class Repeat(Kind):
    """The same layers `times` times in sequence; names inside are local to each repetition,
    and `$index` (1, 2, …) may be used in the layers.

    Attributes:
      times: how many repetitions; 0 passes the input through (EfficientNet-B0's stages of
        one block from the spec that scales them: `times: ${round(depth * 2) - 1}`).
      layers: the layers repeated (not read when times is 0).
    """

    times: NonNegativeInt
    layers: Layers
    # not a YAML argument: the spec parser reads `layers` once per repetition (`times` of them,
    # `$index` = 1, 2, …, each with its own names) into `copies`, as the `repeats` marker says
    copies: tuple = field(default=(), metadata={"internal": True, "repeats": ("layers", "times")})

    def children(self):
        return [(f"[{i + 1}]", copy) for i, copy in enumerate(self.copies)]

    def label(self):
        return f"repeat ×{self.times}"

    @property
    def keeps_range(self):
        """No copies: the input passes through, so what it came from is what the output came from."""
        return not self.copies

    def output_activation(self):
        return output_activation(self.copies[-1]) if self.copies else None

    @staticmethod
    def copy_input(name: str, index: int) -> str:
        """The name `input` has inside copy `index` (from 0) of repeat `name`: the copy's input."""
        return f"{name}_{index + 1}_input"

    def drawing(self, layer, view):
        """Its copies in a frame (one, with the count, when they are drawn alike); a box for none."""
        if not self.copies:
            return view.box(layer)
        return view.repeated(layer, [(self.copy_input(layer.name, i), copy) for i, copy in enumerate(self.copies)])

    def infer(self, ins, ctx):
        x = ins[0]
        for i, copy in enumerate(self.copies):
            ctx.bind(self.copy_input(ctx.layer.name, i), x)
            x = ctx.run(copy, x, f"[{i + 1}]")
            if x is None:
                return None
        return Out(x.shape, f"× {self.times}" if self.copies else "× 0: the input passes through", merged=[x])

    def build(self, ins, ctx):
        x = ins[0]
        for i, copy in enumerate(self.copies):
            ctx.bind(self.copy_input(ctx.layer.name, i), x)
            x = ctx.run(copy, x)
        # an Identity carrying the repeat's own name, so model.get_layer(name) finds its output
        return ctx.keras.layers.Identity(name=ctx.name)(x)


@record(frozen=True, kw_only=True)
class BlockUse(Kind):
    """A use of a block defined under `blocks:`; its layers are parsed with the use's values."""

    block: str
    values: tuple
    layers: tuple

    @property
    def kind(self):
        return self.block

    def children(self):
        return [("", self.layers)]

    def used_block(self):
        return self.block

    def output_activation(self):
        return output_activation(self.layers)

    def label(self):
        """The block's name and the values it was used with, unless they make a long line."""
        values = ", ".join(f"{k} {v}" for k, v in self.values)
        return " · ".join(p for p in (self.block, values if len(values) <= 40 else "") if p)

    def drawing(self, layer, view):
        """Its layers in a frame labelled with the block (no counts: they are inside)."""
        return view.framed(layer, [self.layers], counts=False)

    def infer(self, ins, ctx):
        out = ctx.run(self.layers, ins[0], "")
        return None if out is None else Out(out.shape, f"block {self.block}", merged=[out])

    def build(self, ins, ctx):
        # an Identity carrying the use's own name, so model.get_layer(name) finds its output
        return ctx.keras.layers.Identity(name=ctx.name)(ctx.run(self.layers, ins[0]))
