"""Merges: concat, add, multiply. They read `inputs:` (all named) or `with:` (named layers
joined to the previous layer's output), so a U-Net skip is `- concat: {with: [enc1]}`."""
from __future__ import annotations


from ..errors import Invalid
from .base import Kind, Out, register


def _names(ctx, ins):
    return ", ".join(f"{n} {list(t.shape)}" for n, t in zip(ctx.input_names, ins))


@register("concat")
class Concat(Kind):
    """Concatenates its inputs along channels (the last axis); all other sizes must agree.

    Attributes:
      axis: the axis joined, default -1 (channels). Counted as Keras counts it, with the
        batch as axis 0: for H × W × C maps, 1 is height, 2 width, 3 (or -1) channels.
    """

    axis: int = -1
    inputs_range = (2, 64)
    merges = True
    keras_names = ("Concatenate",)
    family = "merge"

    def infer(self, ins, ctx):
        rank = len(ins[0].shape)   # shapes here have no batch axis; Keras's axis 0 is the batch
        axis = self.axis - 1 if 1 <= self.axis <= rank else self.axis % rank if -rank <= self.axis < 0 else None
        if axis is None or any(len(t.shape) != rank for t in ins):
            raise Invalid(f"inputs must have the same rank and axis {self.axis} must exist: {_names(ctx, ins)}",
                          f"axis counts the batch as 0, as in Keras: use 1 to {rank}, or -1 for channels")
        for t in ins[1:]:
            if any(a != b for i, (a, b) in enumerate(zip(ins[0].shape, t.shape)) if i != axis):
                raise Invalid(f"inputs differ outside axis {self.axis}: {_names(ctx, ins)}",
                              "crop or pad the larger one, or fix the strides so the sizes match")
        total = sum(t.shape[axis] for t in ins)
        shape = tuple(total if i == axis else d for i, d in enumerate(ins[0].shape))
        return Out(shape, " + ".join(str(t.shape[axis]) for t in ins) + f" = {total}")

    def build(self, ins, ctx):
        return ctx.keras.layers.Concatenate(axis=self.axis, name=ctx.name)(ins)


def broadcast(ins, ctx, what):
    rank = max(len(t.shape) for t in ins)
    if any(len(t.shape) != rank for t in ins):
        raise Invalid(f"{what} needs inputs of the same rank: {_names(ctx, ins)}", "reshape one of them (e.g. to [1, 1, C])")
    out = []
    for dims in zip(*(t.shape for t in ins)):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise Invalid(f"{what} needs equal shapes (or 1 to broadcast): {_names(ctx, ins)}",
                          "make the channels and sizes agree, e.g. with a 1×1 conv on the shortcut")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


@register("add")
class Add(Kind):
    """Element-wise sum of its inputs (a residual connection). Shapes must agree."""

    inputs_range = (2, 64)
    merges = True
    family = "merge"

    def infer(self, ins, ctx):
        shape = broadcast(ins, ctx, "add")
        return Out(shape, f"sum of {len(ins)}")

    def build(self, ins, ctx):
        return ctx.keras.layers.Add(name=ctx.name)(ins)


@register("multiply")
class Multiply(Kind):
    """Element-wise product, broadcasting size-1 axes (squeeze-and-excitation: H×W×C · 1×1×C)."""

    inputs_range = (2, 64)
    merges = True
    family = "merge"

    def infer(self, ins, ctx):
        shape = broadcast(ins, ctx, "multiply")
        return Out(shape, f"product of {len(ins)}")

    def build(self, ins, ctx):
        return ctx.keras.layers.Multiply(name=ctx.name)(ins)
