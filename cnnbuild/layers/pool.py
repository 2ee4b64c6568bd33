"""Pooling: max_pool, avg_pool, sum_pool, global_avg_pool, global_max_pool, max_unpool.

Pools have no parameters and act on each activation map separately; a 2×2 pool with
stride 2 halves each side. The stride defaults to the size, as in Keras.
"""
from __future__ import annotations

from ..records import record
from typing import Optional

from ..errors import Invalid
from ..fields import Padding, Pair
from .base import Kind, Out, need_spatial, part_name, register, window
from .keras_parts import explicit_pads, keras_padding
from .labels import size_text, stride_text


@record(frozen=True, kw_only=True)
class Pool(Kind):
    size: Pair = (2, 2)
    stride: Optional[Pair] = None
    padding: Padding = "valid"
    main = "size"

    family = "pool"

    @property
    def strides(self):
        return self.stride or self.size

    def label(self):
        return f"{self.kind} {size_text(self.size)}{stride_text(self.strides)}"

    def parts(self):
        return frozenset({"pad"}) if self.padding not in ("valid", "same") else frozenset()

    def infer(self, ins, ctx):
        h, w, c = need_spatial(ins[0], self.kind)
        oh, ow, rule, pads = window((h, w, c), self.size, self.strides, self.padding, (1, 1), ctx)
        return Out((oh, ow, c), rule, window=(*self.size, *self.strides), offset=(pads[0][0], pads[1][0]))


@register("max_pool")
class MaxPool(Pool):
    """Max pooling: the largest value in each window.

    Attributes:
      size: window, an int or [h, w] (default 2).
      stride: default = size.
      padding: 'valid', 'same', or explicit sizes (padded with −inf, so padding never wins),
        at most half the window on each side (as PyTorch requires): a window wholly in the
        padding would give −inf.
    """

    keeps_range = True
    keras_names = ("MaxPooling2D",)
    aliases = ("maxpool2d", "maxpool", "pool")

    def __post_init__(self):
        if self.padding in ("valid", "same"):
            return
        for (before, after), size, axis in zip(self.padding, self.size, ("height", "width")):
            if max(before, after) > size // 2:
                raise Invalid(f"padding {max(before, after)} on the {axis} is more than half the {size}-wide window: "
                              "a window over padding alone would give −inf", f"use padding of at most {size // 2} "
                              f"there (half the window), or padding: same", field="padding")

    def build(self, ins, ctx):
        x, padding = keras_padding(ins[0], ctx.shape(ins[0]), self.padding, "zeros", self.size, self.strides,
                                   (1, 1), ctx, fill=0.0 if self.padding in ("valid", "same") else float("-inf"))
        return ctx.keras.layers.MaxPooling2D(self.size, strides=self.strides, padding=padding, name=ctx.name)(x)


@register("avg_pool")
class AvgPool(Pool):
    """Average pooling: the mean of each window.

    Attributes:
      size, stride: as for max_pool.
      padding: 'valid', 'same' (Keras: the mean of the values inside the image), or explicit
        sizes (zeros, counted in the mean).
    """

    keeps_range = True
    keras_names = ("AveragePooling2D",)
    aliases = ("avgpool2d", "avgpool")

    def build(self, ins, ctx):
        x, padding = keras_padding(ins[0], ctx.shape(ins[0]), self.padding, "zeros", self.size, self.strides, (1, 1), ctx)
        if self.padding not in ("valid", "same") and padding == "same":  # explicit zeros count in the mean
            x = ctx.keras.layers.ZeroPadding2D(explicit_pads(ctx.shape(ins[0]), self.padding, self.size, self.strides, (1, 1)),
                                               name=part_name(ctx.name, "pad"))(x)
            padding = "valid"
        return ctx.keras.layers.AveragePooling2D(self.size, strides=self.strides, padding=padding, name=ctx.name)(x)


@register("sum_pool")
class SumPool(Pool):
    """Sum pooling: the sum of each window (= average × window area; padding counts as zeros).

    Attributes:
      size, stride, padding: as for max_pool.
    """

    def parts(self):
        return frozenset({"pad", "avg"})

    def build(self, ins, ctx):
        keras = ctx.keras
        x = ins[0]
        pads = explicit_pads(ctx.shape(x), self.padding, self.size, self.strides, (1, 1))
        if pads != ((0, 0), (0, 0)):
            x = keras.layers.ZeroPadding2D(pads, name=part_name(ctx.name, "pad"))(x)
        x = keras.layers.AveragePooling2D(self.size, strides=self.strides, padding="valid", name=part_name(ctx.name, "avg"))(x)
        return keras.layers.Rescaling(float(self.size[0] * self.size[1]), name=ctx.name)(x)


@record(frozen=True, kw_only=True)
class GlobalPool(Kind):
    keepdims: bool = False
    family = "pool"

    def infer(self, ins, ctx):
        h, w, c = need_spatial(ins[0], self.kind)
        return Out((1, 1, c) if self.keepdims else (c,), f"{h}×{w} → 1", whole=True)


@register("global_avg_pool")
class GlobalAvgPool(GlobalPool):
    """The mean of each whole activation map: H × W × C → C.

    Attributes:
      keepdims: keep the 1 × 1 × C shape.
    """

    keeps_range = True
    keras_names = ("GlobalAveragePooling2D",)

    def build(self, ins, ctx):
        return ctx.keras.layers.GlobalAveragePooling2D(keepdims=self.keepdims, name=ctx.name)(ins[0])


@register("global_max_pool")
class GlobalMaxPool(GlobalPool):
    """The max of each whole activation map: H × W × C → C.

    Attributes:
      keepdims: keep the 1 × 1 × C shape.
    """

    keeps_range = True
    keras_names = ("GlobalMaxPooling2D",)

    def build(self, ins, ctx):
        return ctx.keras.layers.GlobalMaxPooling2D(keepdims=self.keepdims, name=ctx.name)(ins[0])


@register("max_unpool")
class MaxUnpool(Kind):
    """SegNet's unpooling: each value goes back to the position where the named max_pool
    found its maximum; the rest is zero. Output size = that pool's input size.

    Attributes:
      pool: the name of a max_pool layer (size = stride, no padding).
    """

    pool: str
    main = "pool"
    refs = ("pool",)   # the spec parser resolves it to the pool's unique name, or reports it unknown
    family = "pool"

    def label(self):
        return f"max_unpool ← {self.pool}"

    def infer(self, ins, ctx):
        pool_layer, pool_ins, pool_out = ctx.lookup(self.pool)
        if pool_layer is None:
            raise Invalid(f"'{self.pool}' is an input, not a max_pool", "name the max_pool whose positions to reuse")
        if pool_layer.kind != "max_pool":
            raise Invalid(f"'{self.pool}' is a layer of kind {pool_layer.kind}, not max_pool", "name the max_pool whose positions to reuse")
        args = pool_layer.args
        if args.strides != args.size or args.padding != "valid":
            raise Invalid(f"max_pool '{self.pool}' must have stride = size and padding: valid to be unpooled", "give that pool only a size (stride defaults to it; padding to valid)")
        h, w, c = need_spatial(ins[0], "max_unpool")
        if (h, w) != pool_out.shape[:2]:
            raise Invalid(f"input is {h}×{w} but max_pool '{self.pool}' gave {pool_out.shape[0]}×{pool_out.shape[1]}",
                          "unpool at the same depth as the pool (mirror the encoder)")
        if c != pool_out.shape[2]:
            raise Invalid(f"input has {c} channels but max_pool '{self.pool}' gave {pool_out.shape[2]}",
                          f"make the layer before give {pool_out.shape[2]} channels")
        ph, pw, _ = pool_ins[0].shape
        # each value goes to one place: the field is its input's, spread (largest over positions)
        return Out((ph, pw, c), f"unpool to {ph}×{pw}; RF the largest over positions", upsample=args.size)

    def build(self, ins, ctx):
        layer, pool_ins, pool_out = ctx.lookup(self.pool)
        return ctx.custom.MaxUnpool(layer.args.size, name=ctx.name)([ins[0], pool_ins[0], pool_out])
