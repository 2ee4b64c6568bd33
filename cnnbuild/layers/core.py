"""Layers without a sliding window: batchnorm, dense, flatten, dropout, activations,
pad, crop, upsample, reshape."""
from __future__ import annotations

from typing import Literal, Optional

from . import shapes
from ..errors import Invalid
from ..fields import Fraction01, Padding, Pair, PositiveFloat, PositiveInt
from .base import Activation, Initializer, Kind, Out, PaddingMode, need_spatial, own_activation, register
from .keras_parts import activation_layer, built_parts, keras_initializer, keras_with_activation
from .labels import applied


def batchnorm_counts(channels: int, bn) -> tuple[int, int]:
    """Keras's BatchNormalization: gamma and beta train; the moving mean and variance do not."""
    trainable = channels * (int(bn.center) + int(bn.scale))
    return trainable, 2 * channels


def batchnorm_of(value):
    """A layer's `batchnorm:` argument as a BatchNorm kind (true: Keras's defaults), or None."""
    if value is True:
        return BatchNorm()
    return value or None


def batchnorm_extra(channels: int, value) -> tuple[int, int]:
    """Parameters a layer's `batchnorm:` argument adds: (trainable, non-trainable)."""
    batchnorm = batchnorm_of(value)
    return batchnorm_counts(channels, batchnorm) if batchnorm else (0, 0)


@register("batchnorm")
class BatchNorm(Kind):
    """Batch normalisation over channels (Keras's BatchNormalization).

    Attributes:
      momentum: for the moving statistics (Keras default 0.99).
      epsilon: added to the variance (Keras default 0.001).
      center, scale: learn beta and gamma.
    """

    keras_names = ("BatchNormalization",)
    aliases = ("batch_norm", "batchnorm2d")

    momentum: Fraction01 = 0.99
    epsilon: PositiveFloat = 0.001
    center: bool = True
    scale: bool = True

    def infer(self, ins, ctx):
        channels = ins[0].shape[-1]
        trainable, frozen = batchnorm_counts(channels, self)
        return Out(ins[0].shape, "", trainable, frozen)

    def keras_layer(self, ctx, name):
        return ctx.keras.layers.BatchNormalization(momentum=self.momentum, epsilon=self.epsilon,
                                                   center=self.center, scale=self.scale, name=name)

    def build(self, ins, ctx):
        return self.keras_layer(ctx, ctx.name)(ins[0])


@register("dense")
class Dense(Kind):
    """A fully connected layer: every output reads every input (on the last axis, as in Keras).

    Attributes:
      units: outputs.
      activation, bias, initializer, batchnorm: as for conv.
    """

    aliases = ("linear",)   # PyTorch's nn.Linear
    needs_flat_input = True

    def output_activation(self):
        return own_activation(self.activation)


    units: PositiveInt
    activation: Optional[Activation] = None
    bias: bool = True
    initializer: Initializer = "glorot_uniform"
    batchnorm: bool | BatchNorm = False
    main = "units"
    family = "fully_connected"

    def label(self):
        return f"dense {self.units}"

    def details(self):
        return applied(self.batchnorm, self.activation)

    def parts(self):
        return built_parts(self.batchnorm, self.activation)

    def infer(self, ins, ctx):
        shape = ins[0].shape
        fan_in = shape[-1]
        params = fan_in * self.units + (self.units if self.bias else 0)
        rule = f"{fan_in}·{self.units} + {self.units}" if self.bias else f"{fan_in}·{self.units}"
        extra = batchnorm_extra(self.units, self.batchnorm)
        rows = shapes.prod(shape[:-1])
        return Out((*shape[:-1], self.units), rule + f" = {params}", params + extra[0], extra[1],
                   rows * fan_in * self.units, whole=len(shape) == 1)

    def build(self, ins, ctx):
        return keras_with_activation(ctx.keras.layers.Dense, ins[0], ctx, batchnorm_of(self.batchnorm), self.activation,
                                     units=self.units, use_bias=self.bias,
                                     kernel_initializer=keras_initializer(ctx, self.initializer))


@register("flatten")
class Flatten(Kind):
    """Flattens H × W × C into one vector of H·W·C (32×32×3 → 3072)."""

    keeps_range = True

    family = "shape"

    def infer(self, ins, ctx):
        size = shapes.prod(ins[0].shape)
        return Out((size,), " · ".join(str(d) for d in ins[0].shape) + f" = {size}", whole=True)

    def build(self, ins, ctx):
        return ctx.keras.layers.Flatten(name=ctx.name)(ins[0])


@register("dropout")
class Dropout(Kind):
    """Drops a fraction `rate` of the inputs while training; survivors are scaled by 1/(1 − rate).

    Attributes:
      rate: the fraction dropped, 0 ≤ rate < 1.
      spatial: drop whole feature maps (Keras's SpatialDropout2D).
    """

    keeps_range = True   # at inference; while training survivors are scaled by 1/(1 − rate)

    rate: Fraction01
    spatial: bool = False
    main = "rate"

    def label(self):
        return f"dropout {self.rate:g}" + (" spatial" if self.spatial else "")

    def infer(self, ins, ctx):
        if self.spatial:
            need_spatial(ins[0], "dropout with spatial: true")
        return Out(ins[0].shape)

    def build(self, ins, ctx):
        layers = ctx.keras.layers
        kind = layers.SpatialDropout2D if self.spatial else layers.Dropout
        return kind(self.rate, name=ctx.name)(ins[0])


ALPHA_FUNCTIONS = ("leaky_relu", "elu")   # the activations activation_layer gives an alpha to


@register("activation")
class ActivationLayer(Kind):
    """An activation function as its own layer: `activation: relu` (or the kind by name: `relu`).

    Attributes:
      function: the activation's name.
      alpha: the slope for leaky_relu (default 0.1, as in the seeds) or the scale for elu.
    """

    @property
    def keeps_range(self):
        return self.function == "linear"

    def output_activation(self):
        return own_activation(self.function)


    function: Activation
    alpha: Optional[float] = None
    main = "function"

    def label(self):
        return self.function

    def __post_init__(self):
        if self.alpha is not None and self.function not in ALPHA_FUNCTIONS:
            raise Invalid(f"alpha {self.alpha} has no effect on {self.function}: alpha applies only to leaky_relu "
                          "(the negative slope) and elu (the scale)",
                          "remove alpha, or use function: leaky_relu or elu", field="alpha")

    def infer(self, ins, ctx):
        return Out(ins[0].shape)

    def build(self, ins, ctx):
        return activation_layer(ctx, self.function, ctx.name, self.alpha)(ins[0])


def _named_activation(function: str, alpha_default: float | None, keras_names: tuple = ()):
    """A kind named after an activation function (`relu`, `leaky_relu: {alpha: 0.2}`)."""
    if alpha_default is None:
        class Named(Kind):
            pass
    else:
        class Named(Kind):
            alpha: Optional[float] = alpha_default
    cls = Named
    cls.__name__ = cls.__qualname__ = f"Activation_{function}"
    cls.__doc__ = f"The {function} activation as a layer." + (
        f"\n\n    Attributes:\n      alpha: {'negative slope' if function == 'leaky_relu' else 'scale'} (default {alpha_default})."
        if alpha_default is not None else "")
    cls.main = "alpha" if alpha_default is not None else None
    cls.keras_names = keras_names
    cls.infer = lambda self, ins, ctx: Out(ins[0].shape)
    cls.output_activation = lambda self: function

    def build(self, ins, ctx):
        return activation_layer(ctx, function, ctx.name, self.alpha if alpha_default is not None else None)(ins[0])
    cls.build = build
    return register(function)(cls)


for _function in ("relu", "relu6", "selu", "gelu", "swish", "silu", "sigmoid", "hard_sigmoid", "hard_swish",
                  "tanh", "softmax", "softplus", "softsign", "mish"):
    _named_activation(_function, None)
_named_activation("leaky_relu", 0.1, ("LeakyReLU",))   # the seeds' Leaky ReLU = max(0.1x, x)
_named_activation("elu", 1.0)


@register("maxout")
class Maxout(Kind):
    """Maxout: the max over `pieces` linear units; C channels become C / pieces.

    Attributes:
      pieces: units per max (default 2: max(w1ᵀx + b1, w2ᵀx + b2)).
    """

    activation_hint = ("maxout is a layer kind of its own, not an activation: add `- maxout: 2` after this layer "
                       "(the max of each 2 channels)")

    pieces: PositiveInt = 2
    main = "pieces"
    family = "fully_connected"

    def label(self):
        return f"maxout {self.pieces}"

    def infer(self, ins, ctx):
        c = ins[0].shape[-1]
        if c % self.pieces:
            raise Invalid(f"maxout with {self.pieces} pieces needs channels divisible by {self.pieces}, got {c}",
                          f"make the previous layer give {c - c % self.pieces or self.pieces} or {c + self.pieces - c % self.pieces} channels")
        return Out((*ins[0].shape[:-1], c // self.pieces), f"{c}/{self.pieces} = {c // self.pieces}")

    def build(self, ins, ctx):
        return ctx.custom.Maxout(self.pieces, name=ctx.name)(ins[0])


@register("layer_norm")
class LayerNorm(Kind):
    """Layer normalisation over the channels of each position (Keras's LayerNormalization
    on the last axis, as ConvNeXt uses it): gamma and beta per channel, 2·C weights, all trained.

    Attributes:
      epsilon: added to the variance (Keras default 0.001; ConvNeXt uses 1e-6).
      center, scale: learn beta and gamma.
    """

    epsilon: PositiveFloat = 0.001
    center: bool = True
    scale: bool = True

    def infer(self, ins, ctx):
        channels = ins[0].shape[-1]
        weights = channels * (int(self.center) + int(self.scale))
        return Out(ins[0].shape, f"{int(self.center) + int(self.scale)}·{channels} = {weights}", weights)

    def build(self, ins, ctx):
        return ctx.keras.layers.LayerNormalization(axis=-1, epsilon=self.epsilon, center=self.center, scale=self.scale,
                                                   name=ctx.name)(ins[0])


@register("layer_scale")
class LayerScale(Kind):
    """One learned factor per channel, multiplied in (ConvNeXt's layer scale): a weight of
    shape (C,) that starts at `init`.

    Attributes:
      init: the factors' first value (ConvNeXt: 1e-6).
    """

    init: float = 1.0e-6
    main = "init"

    def label(self):
        return f"layer_scale {self.init:g}"

    def infer(self, ins, ctx):
        channels = ins[0].shape[-1]
        return Out(ins[0].shape, f"{channels} factors", channels)

    def build(self, ins, ctx):
        return ctx.custom.LayerScale(self.init, name=ctx.name)(ins[0])


@register("rescale")
class Rescale(Kind):
    """x · scale + offset, element by element (Keras's Rescaling; the preprocessing some
    keras.applications models carry inside: MobileNetV3's scale 1/127.5, offset −1).

    Attributes:
      scale: the factor.
      offset: added after scaling (default 0).
    """

    scale: float
    offset: float = 0.0
    main = "scale"
    family = "shape"

    def label(self):
        return f"rescale ·{self.scale:.4g}" + (f" {self.offset:+g}" if self.offset else "")

    def infer(self, ins, ctx):
        return Out(ins[0].shape)

    def build(self, ins, ctx):
        return ctx.keras.layers.Rescaling(self.scale, offset=self.offset, name=ctx.name)(ins[0])


@register("normalize")
class Normalize(Kind):
    """(x − mean) / √variance per channel (Keras's Normalization on the last axis). With
    mean and variance given they are constants (no weights); without, Keras's layer keeps
    them as weights to be adapted or loaded, 2·C + 1 non-trainable values (EfficientNet's).

    Attributes:
      mean: one value per channel, or none (weights, starting at 0).
      variance: one value per channel, or none (weights, starting at 1).
    """

    mean: Optional[tuple[float, ...]] = None
    variance: Optional[tuple[float, ...]] = None
    family = "shape"

    def __post_init__(self):
        if (self.mean is None) != (self.variance is None):
            raise Invalid("normalize needs both mean and variance, or neither", "give both lists (one value per channel), "
                          "or neither to keep them as weights")
        if self.variance is not None and any(v < 0 for v in self.variance):
            raise Invalid(f"variance {list(self.variance)} must not be negative", "give variances ≥ 0 (the square of the deviation)",
                          field="variance")

    def infer(self, ins, ctx):
        channels = ins[0].shape[-1]
        if self.mean is None:
            return Out(ins[0].shape, f"mean, variance: 2·{channels} + 1 count", 0, 2 * channels + 1)
        for what, values in (("mean", self.mean), ("variance", self.variance)):
            if len(values) not in (1, channels):
                raise Invalid(f"{what} has {len(values)} values for {channels} channels", f"give one value, or {channels}")
        return Out(ins[0].shape, "constants")

    def build(self, ins, ctx):
        if self.mean is None:
            return ctx.keras.layers.Normalization(axis=-1, name=ctx.name)(ins[0])
        return ctx.keras.layers.Normalization(axis=-1, mean=list(self.mean), variance=list(self.variance),
                                              name=ctx.name)(ins[0])


@register("pad")
class Pad(Kind):
    """Pads height and width.

    Attributes:
      padding: an int, [ph, pw], or [[top, bottom], [left, right]].
      mode: zeros, reflect or symmetric.
    """

    keras_names = ("ZeroPadding2D",)

    padding: Padding
    mode: PaddingMode = "zeros"
    main = "padding"
    family = "shape"

    def __post_init__(self):
        if self.padding in ("valid", "same"):
            raise Invalid(f"pad needs explicit sizes, got '{self.padding}'", "write padding: 1 or [[top, bottom], [left, right]]")

    def infer(self, ins, ctx):
        h, w, c = need_spatial(ins[0], "pad")
        (t, b), (l, r) = self.padding
        if self.mode != "zeros" and (max(t, b) >= h + (self.mode == "symmetric") or max(l, r) >= w + (self.mode == "symmetric")):
            raise Invalid(f"{self.mode} padding of {max(t, b, l, r)} needs an input larger than {h}×{w}",
                          "use mode: zeros, or pad less")
        return Out((h + t + b, w + l + r, c), f"{h} + {t} + {b} = {h + t + b}")

    def build(self, ins, ctx):
        if self.mode == "zeros":
            return ctx.keras.layers.ZeroPadding2D(self.padding, name=ctx.name)(ins[0])
        return ctx.custom.Pad2D(self.padding, mode=self.mode, name=ctx.name)(ins[0])


@register("crop")
class Crop(Kind):
    """Crops rows and columns off the edges (Keras's Cropping2D).

    Attributes:
      cropping: an int, [ch, cw], or [[top, bottom], [left, right]].
    """

    keeps_range = True
    keras_names = ("Cropping2D",)

    cropping: Padding
    main = "cropping"
    family = "shape"

    def infer(self, ins, ctx):
        h, w, c = need_spatial(ins[0], "crop")
        if self.cropping in ("valid", "same"):
            raise Invalid("crop needs sizes", "write cropping: 1 or [[top, bottom], [left, right]]")
        (t, b), (l, r) = self.cropping
        if t + b >= h or l + r >= w:
            raise Invalid(f"cropping {t}+{b} rows and {l}+{r} columns leaves nothing of {h}×{w}", f"crop fewer than {h} rows and {w} columns in total")
        return Out((h - t - b, w - l - r, c), f"{h} − {t} − {b} = {h - t - b}")

    def build(self, ins, ctx):
        return ctx.keras.layers.Cropping2D(self.cropping, name=ctx.name)(ins[0])


@register("upsample")
class Upsample(Kind):
    """Repeats rows and columns (Keras's UpSampling2D).

    Attributes:
      size: factor, an int or [h, w] (default 2).
      interpolation: nearest or bilinear.
    """

    keeps_range = True
    keras_names = ("UpSampling2D",)

    def upsampling(self):
        return ("size", self.size[0]) if self.size[0] == self.size[1] > 1 else None


    size: Pair = (2, 2)
    interpolation: Literal["nearest", "bilinear"] = "nearest"
    main = "size"
    family = "shape"

    def label(self):
        factor = self.size[0] if self.size[0] == self.size[1] else f"{self.size[0]}×{self.size[1]}"
        return f"upsample ×{factor}"

    def infer(self, ins, ctx):
        h, w, c = need_spatial(ins[0], "upsample")
        note = "; RF the largest over positions" if tuple(self.size) != (1, 1) else ""   # it varies from here on
        return Out((h * self.size[0], w * self.size[1], c), f"{h}·{self.size[0]} = {h * self.size[0]}{note}",
                   upsample=self.size, taps=self.interpolation)

    def build(self, ins, ctx):
        return ctx.keras.layers.UpSampling2D(self.size, interpolation=self.interpolation, name=ctx.name)(ins[0])


@register("reshape")
class Reshape(Kind):
    """Reshapes to `shape` (without the batch axis; one entry may be -1).

    Attributes:
      shape: the new shape, e.g. [7, 7, 64] or [1, 1, -1].
    """

    keeps_range = True

    shape: tuple[int, ...]
    main = "shape"
    family = "shape"

    def label(self):
        return f"reshape {'×'.join(map(str, self.shape)) or '?'}"

    def infer(self, ins, ctx):
        size = shapes.prod(ins[0].shape)
        if not self.shape:   # Keras would make a scalar per image, which no later layer reads
            raise Invalid("shape [] has no axes", "give at least one axis, e.g. shape: [-1] to flatten")
        if sum(1 for d in self.shape if d == -1) > 1 or any(d == 0 or d < -1 for d in self.shape):
            raise Invalid(f"shape {list(self.shape)}: sizes must be positive, with at most one -1", "e.g. shape: [7, 7, -1]")
        known = shapes.prod(d for d in self.shape if d != -1)
        if -1 in self.shape:
            if size % known:
                raise Invalid(f"cannot reshape {size} values into {list(self.shape)}: {size} is not divisible by {known}", f"choose sizes whose product divides {size}")
            out = tuple(size // known if d == -1 else d for d in self.shape)
        else:
            out = self.shape
            if known != size:
                raise Invalid(f"cannot reshape {list(ins[0].shape)} ({size} values) into {list(self.shape)} ({known} values)",
                              "the product of the new shape must equal the old one; use -1 for one axis to infer it")
        return Out(out, f"{size} values")

    def build(self, ins, ctx):
        return ctx.keras.layers.Reshape(self.shape, name=ctx.name)(ins[0])
