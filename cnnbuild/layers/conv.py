"""Convolutions: conv, depthwise_conv, separable_conv, conv_transpose.

Parameters per layer, as the seeds count them: K · (F·F·C_in + 1) for K filters
(ten 3×3×3 filters → 280); with `groups: g` each filter reads C_in / g maps; with a
`connections:` table each output map reads only its listed input maps.
"""
from __future__ import annotations

from ..records import record
from typing import Annotated, ClassVar, Literal, Optional, Union

from . import shapes
from ..errors import Invalid
from ..fields import KernelValues, NonNegativePair, Padding, Pair, PositiveInt
from .base import (Activation, Initializer, Kind, Out, PaddingMode, need_spatial, own_activation, part_name, register,
                   window)
from .core import BatchNorm, batchnorm_extra, batchnorm_of
from .keras_parts import built_parts, explicit_pads, finish, keras_initializer, keras_padding, keras_with_activation
from .labels import applied, size_text, stride_text


# The fixed filters of seed 002 ("Convolved Image" table), by name. The seed lists three edge
# detectors: the diagonal one first, then the Laplacians over 4 and over 8 neighbours.
PRESETS = {
    "identity": ((0, 0, 0), (0, 1, 0), (0, 0, 0)),
    "edge_detection": ((1, 0, -1), (0, 0, 0), (-1, 0, 1)),
    "edge_detection_4": ((0, 1, 0), (1, -4, 1), (0, 1, 0)),
    "edge_detection_8": ((-1, -1, -1), (-1, 8, -1), (-1, -1, -1)),
    "sharpen": ((0, -1, 0), (-1, 5, -1), (0, -1, 0)),
    "box_blur": tuple((1 / 9,) * 3 for _ in range(3)),
    "gaussian_blur": tuple(tuple(v / 16 for v in row) for row in ((1, 2, 1), (2, 4, 2), (1, 2, 1))),
}
KernelWeights = Annotated[object, KernelValues(tuple(PRESETS))]


def _matrix(value) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in PRESETS[value]) if isinstance(value, str) else value


def kernel_layout(weights) -> tuple:
    """(rows, columns, input channels or None, filters or None) of fixed kernel values: a
    matrix (or preset) serves every input channel of every filter, a list of matrices one
    filter each (every input channel), a 4-D array is Keras's F×F×C_in×K kernel itself.

    >>> kernel_layout("sharpen"), kernel_layout(("identity", "box_blur"))
    ((3, 3, None, None), (3, 3, None, 2))
    >>> kernel_layout(((((1.0,),),),))
    (1, 1, 1, 1)
    """
    if isinstance(weights, str) or len(_shape(weights)) == 2:
        rows, columns = _shape(_matrix(weights))
        return rows, columns, None, None
    if all(isinstance(item, str) or len(_shape(item)) == 2 for item in weights):
        shapes_ = {_shape(_matrix(item)) for item in weights}
        if len(shapes_) > 1:
            raise Invalid(f"the filters' matrices differ in size ({', '.join('×'.join(map(str, s)) for s in sorted(shapes_))})",
                          "give every filter a matrix of the kernel's size", field="weights")
        return (*shapes_.pop(), None, len(weights))
    shape = _shape(weights)
    if len(shape) != 4:
        raise Invalid(f"{len(shape)}-D values ({'×'.join(map(str, shape))}); a kernel is a matrix F×F, "
                      f"one matrix per filter, or F×F×C_in×K", "write a 2-D matrix or Keras's 4-D kernel", field="weights")
    return shape


def _shape(value) -> tuple:
    return (len(value), *_shape(value[0])) if isinstance(value, tuple) else ()


def kernel_array(weights, channels: int, filters: int):
    """The F×F×C_in×K numpy array Keras's Conv2D holds for fixed `weights` (kernel_layout)."""
    import numpy as np
    if isinstance(weights, str) or len(_shape(weights)) == 2:
        matrix = np.asarray(_matrix(weights), dtype="float32")
        return np.broadcast_to(matrix[:, :, None, None], (*matrix.shape, channels, filters)).copy()
    if kernel_layout(weights)[3] is not None and kernel_layout(weights)[2] is None:
        stack = np.stack([np.asarray(_matrix(item), dtype="float32") for item in weights], axis=-1)
        return np.broadcast_to(stack[:, :, None, :], (*stack.shape[:2], channels, filters)).copy()
    return np.asarray(weights, dtype="float32")


@record(frozen=True, kw_only=True)
class Convolution(Kind):
    """What every convolution (transposed ones too) shares, and the one place of Keras's rule
    on strides with dilation: Conv2D and Conv2DTranspose refuse `strides > 1` with
    `dilation_rate > 1`; DepthwiseConv2D and SeparableConv2D take both (Keras decomposes them)."""

    strided_dilation: ClassVar[bool] = False   # does the Keras layer take strides > 1 with dilation > 1?
    kernel: Pair = (3, 3)
    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    activation: Optional[Activation] = None
    bias: bool = True
    batchnorm: Union[bool, BatchNorm] = False
    initializer: Initializer = "glorot_uniform"

    def __post_init__(self):
        if self.dilation != (1, 1) and self.stride != (1, 1) and not self.strided_dilation:
            raise Invalid(f"dilation {list(self.dilation)} with stride {list(self.stride)}: Keras's {self.kind} does not "
                          f"support both at once", "use stride: 1 with dilation, or dilation: 1 with stride")

    def keras_convolution(self, layer, x, ctx, padding, **arguments):
        """The Keras convolution `layer` with the arguments every convolution shares, then
        its batchnorm and activation."""
        return keras_with_activation(layer, x, ctx, batchnorm_of(self.batchnorm), self.activation, kernel_size=self.kernel,
                                     strides=self.stride, padding=padding, dilation_rate=self.dilation,
                                     use_bias=self.bias, **arguments)

    family = "convolution"

    def output_activation(self):
        return own_activation(self.activation)

    def _label(self, filters=None, extra="") -> str:
        """'conv 3×3/2, 64, dilation 2×2' and what the kind adds (`extra`: groups, multiplier)."""
        text = f"{self.kind} {size_text(self.kernel)}{stride_text(self.stride)}" + (f", {filters}" if filters else "")
        if tuple(self.dilation) != (1, 1):
            text += f", dilation {size_text(self.dilation)}"
        return text + extra

    def details(self):
        return applied(self.batchnorm, self.activation)

    def parts(self):
        padding, mode = getattr(self, "padding", "valid"), getattr(self, "padding_mode", "zeros")
        explicit = padding not in ("valid", "same") or mode != "zeros" or getattr(self, "connections", None) is not None
        return built_parts(self.batchnorm, self.activation, padded=explicit)


@record(frozen=True, kw_only=True)
class ConvBase(Convolution):
    padding: Padding = "valid"
    padding_mode: PaddingMode = "zeros"

    def __post_init__(self):
        super().__post_init__()
        if self.padding_mode != "zeros" and self.padding == "valid":
            raise Invalid(f"padding_mode: {self.padding_mode} has no effect with padding: valid",
                          "give padding (an int, or 'same'), or remove padding_mode")

    def _window(self, ins, ctx):
        shape = need_spatial(ins[0], self.kind)
        return window(shape, self.kernel, self.stride, self.padding, self.dilation, ctx)

    def _rf(self):
        kh, kw = (shapes.effective_kernel(k, d) for k, d in zip(self.kernel, self.dilation))
        return (kh, kw, *self.stride)

    def _keras_padding(self, ins, ctx):
        """(the input, padded explicitly when Keras cannot, and Keras's padding argument)."""
        return keras_padding(ins[0], ctx.shape(ins[0]), self.padding, self.padding_mode,
                             self.kernel, self.stride, self.dilation, ctx)


@register("conv")
class Conv(ConvBase):
    """A 2-D convolution (cross-correlation, as every framework computes it).

    Attributes:
      filters: K, the number of filters (= output channels).
      kernel: F, an int or [h, w].
      stride: S (default 1).
      padding: P: 'valid' (0), 'same' (Keras: output ⌈N/S⌉), an int, [ph, pw], or [[top, bottom], [left, right]].
      padding_mode: zeros, reflect or symmetric.
      dilation: D; the kernel covers D·(F − 1) + 1.
      groups: g; each filter reads C_in / g input maps (AlexNet's two towers: groups: 2).
      connections: a table, one list per output map of the input maps it reads (LeNet-5's C3).
      weights: fixed kernel values instead of the initializer's (seed 002's filters): a preset
        (identity, edge_detection, edge_detection_4, edge_detection_8, sharpen, box_blur,
        gaussian_blur), an F×F matrix used for every (input channel, filter) pair, a list of
        matrices or presets one per filter (each over every input channel, summed as any
        convolution sums), or Keras's F×F×C_in×K array. Biases start at 0; `trainable: false`
        keeps both as written.
      activation, bias, batchnorm, initializer: as in Keras.
    """

    filters: PositiveInt
    groups: PositiveInt = 1
    connections: Optional[tuple[tuple[int, ...], ...]] = None
    weights: Optional[KernelWeights] = None
    main = "filters"
    keras_names = ("Conv2D", "Convolution2D")
    aliases = ("convolution",)

    def label(self):
        return self._label(self.filters, f", groups {self.groups}" if self.groups != 1 else "")

    def __post_init__(self):
        super().__post_init__()
        if self.filters % self.groups:
            raise Invalid(f"filters {self.filters} is not divisible by groups {self.groups}",
                          f"use filters: {self.filters - self.filters % self.groups or self.groups}")
        if self.connections is not None:
            if len(self.connections) != self.filters:
                raise Invalid(f"connections has {len(self.connections)} rows but filters is {self.filters}",
                              "give one list of input maps per output map")
            if self.groups != 1 or self.dilation != (1, 1):
                raise Invalid("connections cannot be combined with groups or dilation", "use either a connections table or groups / dilation")
        if self.weights is not None:
            self._check_weights()

    def _check_weights(self):
        """Fixed values against the kernel and the filters (the input channels: infer)."""
        if self.groups != 1 or self.connections is not None:
            raise Invalid("weights cannot be combined with groups or connections", "give weights for a plain conv (groups: 1)",
                          field="weights")
        rows, columns, _, filters = kernel_layout(self.weights)
        if (rows, columns) != tuple(self.kernel):
            raise Invalid(f"weights are {rows}×{columns} but kernel is {size_text(self.kernel)}",
                          f"write kernel: {rows if rows == columns else [rows, columns]}, or give "
                          f"{size_text(self.kernel)} values", field="weights")
        if filters is not None and filters != self.filters:
            raise Invalid(f"weights hold {filters} filters but filters is {self.filters}",
                          f"write filters: {filters}, or give {self.filters} kernels", field="weights")

    def infer(self, ins, ctx):
        h, w, c = need_spatial(ins[0], "conv")
        oh, ow, rule, pads = self._window(ins, ctx)
        kh, kw = self.kernel
        if c % self.groups:
            raise Invalid(f"input channels {c} are not divisible by groups {self.groups}",
                          "each group must read the same number of input maps")
        if self.weights is not None and kernel_layout(self.weights)[2] not in (None, c):
            kh, kw, given, k = kernel_layout(self.weights)
            raise Invalid(f"weights are {kh}×{kw}×{given}×{k} but the input has {c} channels",
                          f"give a {kh}×{kw}×{c}×{k} array, or one {kh}×{kw} matrix for every channel")
        if self.connections is not None:
            for j, row in enumerate(self.connections):
                bad = [i for i in row if not 0 <= i < c]
                if bad or not row or len(set(row)) != len(row):
                    raise Invalid(f"connections[{j}] = {list(row)} must list distinct input maps from 0 to {c - 1}", f"list input maps between 0 and {c - 1}, each once")
            reads = sum(len(r) for r in self.connections)
            weights = kh * kw * reads
            macs = oh * ow * kh * kw * reads
        else:
            weights = kh * kw * (c // self.groups) * self.filters
            macs = oh * ow * self.filters * kh * kw * (c // self.groups)
        params = weights + (self.filters if self.bias else 0)
        bn, bn_frozen = batchnorm_extra(self.filters, self.batchnorm)
        return Out((oh, ow, self.filters), rule, params + bn, bn_frozen, macs, window=self._rf(), offset=(pads[0][0], pads[1][0]))

    def build(self, ins, ctx):
        x, padding = self._keras_padding(ins, ctx)
        if self.connections is not None:
            if padding == "same":
                x, padding = ctx.keras.layers.ZeroPadding2D(explicit_pads(ctx.shape(ins[0]), "same", self.kernel, self.stride,
                                                                         self.dilation), name=part_name(ctx.name, "pad"))(x), "valid"
            x = ctx.custom.TableConv2D(self.filters, self.kernel, self.connections, strides=self.stride,
                                       use_bias=self.bias, kernel_initializer=keras_initializer(ctx, self.initializer),
                                       name=ctx.name)(x)
            return finish(x, ctx, batchnorm_of(self.batchnorm), self.activation)   # TableConv2D fuses no activation
        initializer = keras_initializer(ctx, self.initializer)
        if self.weights is not None:
            initializer = ctx.keras.initializers.Constant(kernel_array(self.weights, ctx.shape(ins[0])[-1], self.filters))
        return self.keras_convolution(ctx.keras.layers.Conv2D, x, ctx, padding, filters=self.filters, groups=self.groups,
                                      kernel_initializer=initializer)


@register("depthwise_conv")
class DepthwiseConv(ConvBase):
    """A depthwise convolution: each input map gets its own `multiplier` filters.

    Attributes:
      multiplier: filters per input map (Keras's depth_multiplier), default 1.
      kernel, stride, padding, padding_mode, dilation, activation, bias, batchnorm, initializer: as for conv.
    """

    multiplier: PositiveInt = 1
    main = "kernel"
    keras_names = ("DepthwiseConv2D",)
    strided_dilation = True

    def label(self):
        return self._label(extra=f", ×{self.multiplier}" if self.multiplier != 1 else "")

    def infer(self, ins, ctx):
        h, w, c = need_spatial(ins[0], "depthwise_conv")
        oh, ow, rule, pads = self._window(ins, ctx)
        kh, kw = self.kernel
        out = c * self.multiplier
        params = kh * kw * out + (out if self.bias else 0)
        bn, bn_frozen = batchnorm_extra(out, self.batchnorm)
        return Out((oh, ow, out), rule, params + bn, bn_frozen, oh * ow * out * kh * kw, window=self._rf(), offset=(pads[0][0], pads[1][0]))

    def build(self, ins, ctx):
        x, padding = self._keras_padding(ins, ctx)
        return self.keras_convolution(ctx.keras.layers.DepthwiseConv2D, x, ctx, padding, depth_multiplier=self.multiplier,
                                      depthwise_initializer=keras_initializer(ctx, self.initializer))


@register("separable_conv")
class SeparableConv(ConvBase):
    """A depthwise convolution followed by a 1×1 pointwise convolution (one Keras layer).

    Attributes:
      filters: output channels of the pointwise step.
      multiplier: depthwise filters per input map, default 1.
      kernel, stride, padding, padding_mode, dilation, activation, bias, batchnorm, initializer: as for conv.
    """

    filters: PositiveInt
    multiplier: PositiveInt = 1
    main = "filters"
    keras_names = ("SeparableConv2D",)
    strided_dilation = True

    def label(self):
        return self._label(self.filters, f", ×{self.multiplier}" if self.multiplier != 1 else "")

    def infer(self, ins, ctx):
        h, w, c = need_spatial(ins[0], "separable_conv")
        oh, ow, rule, pads = self._window(ins, ctx)
        kh, kw = self.kernel
        mid = c * self.multiplier
        params = kh * kw * mid + mid * self.filters + (self.filters if self.bias else 0)
        macs = oh * ow * mid * kh * kw + oh * ow * mid * self.filters
        bn, bn_frozen = batchnorm_extra(self.filters, self.batchnorm)
        return Out((oh, ow, self.filters), rule, params + bn, bn_frozen, macs, window=self._rf(), offset=(pads[0][0], pads[1][0]))

    def build(self, ins, ctx):
        x, padding = self._keras_padding(ins, ctx)
        return self.keras_convolution(ctx.keras.layers.SeparableConv2D, x, ctx, padding, filters=self.filters,
                                      depth_multiplier=self.multiplier,
                                      depthwise_initializer=keras_initializer(ctx, self.initializer),
                                      pointwise_initializer=keras_initializer(ctx, self.initializer))


@register("conv_transpose")
class ConvTranspose(Convolution):
    """A transposed convolution (learned upsampling, as in U-Net's decoder).

    Output size, as Keras computes it: 'valid' → N·S + max(F − S, 0); 'same' → N·S.

    Attributes:
      filters: output channels.
      kernel, stride: F and S; stride 2 doubles the size.
      padding: 'valid' or 'same' (Keras's two).
      output_padding: rows and columns added at the far edge, each less than the stride
        (Keras's): the output is then (N − 1)·S + F + p ('valid') or (N − 1)·S + F mod 2 + p
        ('same'), to reach a size the forward convolution came from (7 → 14 with p = 1).
      dilation, activation, bias, batchnorm, initializer: as for conv.
    """

    filters: PositiveInt
    kernel: Pair = (2, 2)
    padding: Literal["valid", "same"] = "valid"
    output_padding: Optional[NonNegativePair] = None
    main = "filters"

    def __post_init__(self):
        super().__post_init__()
        if self.output_padding is not None and any(p >= s for p, s in zip(self.output_padding, self.stride)):
            raise Invalid(f"output_padding {list(self.output_padding)} must be less than the stride {list(self.stride)} "
                          "on each axis (Keras's rule)", f"use at most {[s - 1 for s in self.stride]}, or a larger stride",
                          "output_padding")
    keras_names = ("Conv2DTranspose",)

    def upsampling(self):
        return ("stride", self.stride[0]) if self.stride[0] == self.stride[1] > 1 else None

    def label(self):
        return self._label(self.filters)

    def infer(self, ins, ctx):
        h, w, c = need_spatial(ins[0], "conv_transpose")
        extra = self.output_padding or (None, None)
        oh = shapes.transpose_output(h, self.kernel[0], self.stride[0], self.padding, self.dilation[0], extra[0])
        ow = shapes.transpose_output(w, self.kernel[1], self.stride[1], self.padding, self.dilation[1], extra[1])
        kh, kw = self.kernel
        f = shapes.effective_kernel(kh, self.dilation[0])
        if self.output_padding is not None:
            rule = (f"({h} − 1)·{self.stride[0]} + {f if self.padding == 'valid' else f'{f} mod 2'} + "
                    f"{self.output_padding[0]} = {oh}")
        elif self.padding == "same":
            rule = f"same: {h}·{self.stride[0]} = {oh}"
        else:
            rule = f"{h}·{self.stride[0]} + max({shapes.effective_kernel(kh, self.dilation[0])} − {self.stride[0]}, 0) = {oh}"
        params = kh * kw * c * self.filters + (self.filters if self.bias else 0)
        bn, bn_frozen = batchnorm_extra(self.filters, self.batchnorm)
        return Out((oh, ow, self.filters), rule + self.spread_note(), params + bn, bn_frozen, h * w * c * self.filters * kh * kw,
                   upsample=self.stride, taps=self.taps((h, w), (oh, ow)))

    def taps(self, sizes, outputs) -> tuple:
        """Per axis (kernel, dilation, top or left): output o reads input i where i·S = o + top − k·D.
        With 'same', Keras crops the rows the forward convolution from the output's size would
        pad before: ((N − 1)·S + F_eff − out) // 2 ((F_eff − S) // 2 without output_padding)."""
        return tuple((k, d, max((n - 1) * s + shapes.effective_kernel(k, d) - o, 0) // 2 if self.padding == "same" else 0)
                     for k, d, s, n, o in zip(self.kernel, self.dilation, self.stride, sizes, outputs))

    def spread_note(self) -> str:
        return "; RF the largest over positions" if tuple(self.stride) != (1, 1) else ""

    def build(self, ins, ctx):
        return self.keras_convolution(ctx.keras.layers.Conv2DTranspose, ins[0], ctx, self.padding, filters=self.filters,
                                      kernel_initializer=keras_initializer(ctx, self.initializer),
                                      output_padding=self.output_padding)
