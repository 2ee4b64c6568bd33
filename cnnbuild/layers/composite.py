"""Composites: inception, residual, repeat, and uses of user blocks. They hold child
layers (parsed by the spec parser into their own name scope) and run them with `ctx.run`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from ..errors import Invalid
from ..fields import Branches, Layers, PositiveInt
from .base import Activation, Kind, Out, part_name, register


@register("inception")
@dataclass(frozen=True, kw_only=True)
class Inception(Kind):
    """Parallel branches from the same input, concatenated on channels (GoogLeNet).

    Attributes:
      branches: a list of layer lists; every branch must give the same height × width.
        An empty branch ([]) passes the input through (a DenseNet layer).
    """

    branches: Branches

    def children(self):
        return [(f"branches[{i}]", b) for i, b in enumerate(self.branches)]

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
@dataclass(frozen=True, kw_only=True)
class Residual(Kind):
    """A residual block: a(k+2) = g(z(k+2) + a(k)); the shortcut skips the body.

    Attributes:
      body: the layers on the main path.
      shortcut: 'auto' (identity when shapes agree, else a strided 1×1 projection, with
        batchnorm when the body uses it), 'identity', or a list of layers.
      activation: g, applied after the sum.
    """

    body: Layers
    shortcut: Union[Literal["auto", "identity"], Layers] = "auto"
    activation: Optional[Activation] = None

    def children(self):
        out = [("body", self.body)]
        if isinstance(self.shortcut, tuple):
            out.append(("shortcut", self.shortcut))
        return out

    def infer(self, ins, ctx):
        x = ins[0]
        body = ctx.run(self.body, x, "body")
        if body is None:
            return None
        if isinstance(self.shortcut, tuple):
            short = ctx.run(self.shortcut, x, "shortcut")
        elif self.shortcut == "identity" or body.shape == x.shape:
            short = x
        else:
            if len(x.shape) != 3 or len(body.shape) != 3:
                raise Invalid(f"shortcut: auto cannot project {list(x.shape)} to {list(body.shape)}",
                              "give the shortcut as a list of layers")
            stride = max(1, round(x.shape[0] / body.shape[0]))
            if ((x.shape[0] - 1) // stride + 1, (x.shape[1] - 1) // stride + 1) != body.shape[:2]:
                raise Invalid(f"shortcut: auto cannot reach {body.shape[0]}×{body.shape[1]} from "
                              f"{x.shape[0]}×{x.shape[1]} with a strided 1×1 convolution",
                              "give the shortcut as a list of layers")
            short = ctx.run(projection(ctx.layer, self, body.shape[-1], stride), x, "shortcut")
        if short is None:
            return None
        if short.shape != body.shape:
            raise Invalid(f"body gives {list(body.shape)} but the shortcut gives {list(short.shape)}",
                          "use shortcut: auto (a 1×1 projection), or make the body keep the shape")
        return Out(body.shape, "body + shortcut", merged=[body, short])

    def build(self, ins, ctx):
        x = ins[0]
        body = ctx.run(self.body, x)
        if isinstance(self.shortcut, tuple):
            short = ctx.run(self.shortcut, x)
        elif self.shortcut == "identity" or tuple(body.shape[1:]) == tuple(x.shape[1:]):
            short = x
        else:
            stride = max(1, round(x.shape[1] / body.shape[1]))
            short = ctx.run(projection(ctx.layer, self, body.shape[-1], stride), x)
        if not self.activation or self.activation == "linear":
            return ctx.keras.layers.Add(name=ctx.name)([body, short])
        from .conv import activation_layer
        out = ctx.keras.layers.Add(name=part_name(ctx.name, "add"))([body, short])
        return activation_layer(ctx, self.activation, ctx.name)(out)


def projection(layer, residual, channels: int, stride: int) -> tuple:
    """shortcut: auto's projection: a 1×1 convolution with the body's stride, with batchnorm
    when the body's convolutions use it (ResNet's projection shortcut)."""
    from .base import Layer
    from .conv import Conv
    convs = [child.args for child in residual.body if hasattr(child.args, "batchnorm")]
    batchnorm = next((c.batchnorm for c in convs if c.batchnorm), False)
    bias = convs[0].bias if convs else True
    # 'same' on a 1×1 kernel pads nothing and gives ⌈N/S⌉, the size a 'same' body gives
    conv = Conv(filters=channels, kernel=(1, 1), stride=(stride, stride), padding="same", bias=bias, batchnorm=batchnorm)
    return (Layer(conv, part_name(layer.name, "shortcut"), (), layer.where, trainable=layer.trainable),)


@register("repeat")
@dataclass(frozen=True, kw_only=True)
class Repeat(Kind):
    """The same layers `times` times in sequence; names inside are local to each repetition,
    and `$index` (1, 2, …) may be used in the layers.

    Attributes:
      times: how many repetitions.
      layers: the layers repeated.
    """

    times: PositiveInt
    layers: Layers
    # one parsed copy of `layers` per repetition, set by the spec parser (not a YAML argument)
    copies: tuple = field(default=(), metadata={"internal": True})

    def children(self):
        return [(f"[{i + 1}]", copy) for i, copy in enumerate(self.copies)]

    def infer(self, ins, ctx):
        x = ins[0]
        for i, copy in enumerate(self.copies):
            ctx.bind(f"{ctx.layer.name}_{i + 1}_input", x)
            x = ctx.run(copy, x, f"[{i + 1}]")
            if x is None:
                return None
        return Out(x.shape, f"× {self.times}", merged=[x])

    def build(self, ins, ctx):
        x = ins[0]
        for i, copy in enumerate(self.copies):
            ctx.bind(f"{ctx.layer.name}_{i + 1}_input", x)
            x = ctx.run(copy, x)
        # an Identity carrying the repeat's own name, so model.get_layer(name) finds its output
        return ctx.keras.layers.Identity(name=ctx.name)(x)


@dataclass(frozen=True, kw_only=True)
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

    def infer(self, ins, ctx):
        out = ctx.run(self.layers, ins[0], "")
        return None if out is None else Out(out.shape, f"block {self.block}", merged=[out])

    def build(self, ins, ctx):
        # an Identity carrying the use's own name, so model.get_layer(name) finds its output
        return ctx.keras.layers.Identity(name=ctx.name)(ctx.run(self.layers, ins[0]))
