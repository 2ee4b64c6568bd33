"""The Keras pieces several kinds build with: explicit padding, activation layers, and the
batchnorm and activation that follow a convolution or a dense layer.

Each takes the builder's context `ctx` (ctx.keras is Keras, ctx.custom cnnbuild's own Keras
layers, ctx.name the spec layer's unique name), so nothing here imports Keras itself.
"""
from __future__ import annotations

from . import shapes
from .base import part_name

# Activations built as their own layers, with the seeds' / Keras's exact arguments, rather
# than fused into the layer before them
OWN_LAYER_ACTIVATIONS = ("leaky_relu", "relu6", "hard_swish")


def fused_activation(batchnorm, activation):
    """The activation Keras can fuse into the layer itself: None when a batchnorm comes in
    between, when there is none, or when it needs its own layer."""
    if batchnorm or activation in (None, "linear") or activation in OWN_LAYER_ACTIVATIONS:
        return None
    return activation


def keras_initializer(ctx, initializer):
    """A kind's `initializer` as Keras takes it: a name as it is; one with arguments as
    Keras's class of that name (chosen from this table, never looked up from the text)."""
    if isinstance(initializer, str):
        return initializer
    initializers = ctx.keras.initializers
    classes = {"variance_scaling": initializers.VarianceScaling, "constant": initializers.Constant,
               "random_normal": initializers.RandomNormal, "truncated_normal": initializers.TruncatedNormal,
               "random_uniform": initializers.RandomUniform}
    if initializer.name not in classes:
        return initializer.name
    return classes[initializer.name](**initializer.arguments())


def built_parts(batchnorm, activation, padded=False) -> frozenset:
    """The parts `finish` and `keras_padding` build beside a layer: its batchnorm ('bn'),
    its activation when not fused, and 'pad' when `padded` (an explicit padding layer may be needed)."""
    parts = {"bn"} if batchnorm else set()
    if activation not in (None, "linear") and fused_activation(batchnorm, activation) is None:
        parts.add(activation)
    return frozenset(parts | ({"pad"} if padded else set()))


def activation_layer(ctx, function: str, layer_name: str, alpha: float | None = None):
    """The Keras layer of one activation function; leaky_relu's slope is the seeds' 0.1 unless given."""
    keras = ctx.keras
    if function == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.1 if alpha is None else alpha, name=layer_name)
    if function == "relu6":
        return keras.layers.ReLU(max_value=6.0, name=layer_name)
    if function == "elu" and alpha is not None:
        return keras.layers.ELU(alpha=alpha, name=layer_name)
    if function == "hard_swish":
        return keras.layers.Activation("hard_silu", name=layer_name)
    return keras.layers.Activation(function, name=layer_name)


def finish(x, ctx, batchnorm, activation):
    """What follows a layer's weights: its batchnorm (a BatchNorm kind, or None), then its
    activation, as the seeds order them; each a Keras layer named after the spec layer."""
    if batchnorm:
        x = batchnorm.keras_layer(ctx, part_name(ctx.name, "bn"))(x)
    if activation and activation != "linear":
        x = activation_layer(ctx, activation, part_name(ctx.name, activation))(x)
    return x


def keras_with_activation(layer, x, ctx, batchnorm, activation, **arguments):
    """The Keras layer `layer(**arguments)` named after the spec layer, with the activation
    fused when Keras can (see fused_activation), then the batchnorm and activation it could not
    fuse. The one tail of conv, depthwise_conv, separable_conv, conv_transpose and dense."""
    fused = fused_activation(batchnorm, activation)
    x = layer(activation=fused, name=ctx.name, **arguments)(x)
    return x if fused else finish(x, ctx, batchnorm, activation)


def explicit_pads(shape, padding, kernel, stride, dilation):
    """'valid' / 'same' / explicit padding as ((top, bottom), (left, right)).

    >>> explicit_pads((224, 224, 3), "same", (3, 3), (2, 2), (1, 1))
    ((0, 1), (0, 1))
    """
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return (shapes.same_padding(shape[0], kernel[0], stride[0], dilation[0]),
                shapes.same_padding(shape[1], kernel[1], stride[1], dilation[1]))
    return padding


def keras_padding(x, shape, padding, mode, kernel, stride, dilation, ctx, fill=0.0):
    """Keras convolutions and pools know only 'valid' and 'same'. Returns (x, 'valid'|'same'),
    adding an explicit padding layer when the spec's padding is neither."""
    keras = ctx.keras
    if padding in ("valid", "same") and mode == "zeros" and fill == 0.0:
        return x, padding
    pads = explicit_pads(shape, padding, kernel, stride, dilation)
    if pads == ((0, 0), (0, 0)):
        return x, "valid"
    same = explicit_pads(shape, "same", kernel, stride, dilation)
    if mode == "zeros" and fill == 0.0 and pads == same:
        return x, "same"
    if mode == "zeros" and fill == 0.0:
        return keras.layers.ZeroPadding2D(pads, name=part_name(ctx.name, "pad"))(x), "valid"
    return ctx.custom.Pad2D(pads, mode=mode, value=fill, name=part_name(ctx.name, "pad"))(x), "valid"
