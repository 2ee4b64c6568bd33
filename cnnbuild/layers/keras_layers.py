"""The few Keras layers cnnbuild needs that Keras does not have.

Imported only when a model is built or loaded (it imports Keras). Each is registered as
serializable, so `model.keras` files reload with `import cnnbuild.layers.keras_layers`.
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cnnbuild")
class Pad2D(keras.layers.Layer):
    """Explicit [[top, bottom], [left, right]] padding with zeros, reflect, symmetric, or a
    constant (max pooling pads with −inf, so padding never wins the max)."""

    def __init__(self, padding, mode="zeros", value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.padding = tuple(tuple(int(v) for v in p) for p in padding)
        self.mode = mode
        self.value = float(value)

    def call(self, x):
        pads = [(0, 0), *self.padding, (0, 0)]
        if self.mode in ("reflect", "symmetric"):
            return ops.pad(x, pads, mode=self.mode)
        return ops.pad(x, pads, mode="constant", constant_values=self.value)

    def compute_output_shape(self, shape):
        (t, b), (l, r) = self.padding
        h = None if shape[1] is None else shape[1] + t + b
        w = None if shape[2] is None else shape[2] + l + r
        return (shape[0], h, w, shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "mode": self.mode, "value": self.value}


@keras.saving.register_keras_serializable(package="cnnbuild")
class Maxout(keras.layers.Layer):
    """Maxout over channel groups: C channels → C / pieces, each the max of `pieces`
    consecutive channels (max(w1ᵀx + b1, w2ᵀx + b2) when the previous layer is linear)."""

    def __init__(self, pieces=2, **kwargs):
        super().__init__(**kwargs)
        self.pieces = int(pieces)

    def call(self, x):
        shape = ops.shape(x)
        channels = x.shape[-1]
        grouped = ops.reshape(x, (*[shape[i] for i in range(len(x.shape) - 1)], channels // self.pieces, self.pieces))
        return ops.max(grouped, axis=-1)

    def compute_output_shape(self, shape):
        return (*shape[:-1], shape[-1] // self.pieces)

    def get_config(self):
        return {**super().get_config(), "pieces": self.pieces}


@keras.saving.register_keras_serializable(package="cnnbuild")
class MaxUnpool(keras.layers.Layer):
    """SegNet's max-unpooling: puts each value back at the position its max pool took the
    maximum from, zeros elsewhere. Called on [x, pool_input, pool_output]; the positions are
    where the pool's input equals its (upsampled) output, which is the argmax (ties share)."""

    def __init__(self, size=(2, 2), **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(s) for s in size)

    def call(self, inputs):
        x, pool_input, pool_output = inputs
        up = lambda t: ops.repeat(ops.repeat(t, self.size[0], axis=1), self.size[1], axis=2)
        h, w = pool_input.shape[1], pool_input.shape[2]
        mask = ops.cast(ops.equal(pool_input, up(pool_output)[:, :h, :w, :]), x.dtype)
        return up(x)[:, :h, :w, :] * mask

    def compute_output_shape(self, shapes):
        return shapes[1][:3] + (shapes[0][3],)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package="cnnbuild")
class TableConv2D(keras.layers.Layer):
    """A convolution where output map j reads only the input maps listed in table[j]
    (LeNet-5's S2→C3 connection table). Only the connected kernels are weights, so the
    parameter count is F·F·(connections) + filters, as in the paper."""

    def __init__(self, filters, kernel_size, table, strides=(1, 1), use_bias=True, kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.strides = tuple(int(s) for s in strides)
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.table = tuple(tuple(int(i) for i in row) for row in table)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, shape):
        channels = shape[-1]
        pairs = [(i, j) for j, row in enumerate(self.table) for i in row]
        placement = [[0.0] * (channels * self.filters) for _ in pairs]
        for k, (i, j) in enumerate(pairs):
            placement[k][i * self.filters + j] = 1.0
        self.placement = ops.convert_to_tensor(placement)
        kh, kw = self.kernel_size
        self.kernel_values = self.add_weight(name="kernel", shape=(kh * kw, len(pairs)),
                                             initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None
        self.channels = channels

    def call(self, x):
        kh, kw = self.kernel_size
        kernel = ops.reshape(ops.matmul(self.kernel_values, ops.cast(self.placement, self.kernel_values.dtype)),
                             (kh, kw, self.channels, self.filters))
        y = ops.conv(x, ops.cast(kernel, x.dtype), strides=self.strides, padding="valid")
        if self.bias is not None:
            y = y + ops.cast(self.bias, y.dtype)
        return y

    def compute_output_shape(self, shape):
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        size = lambda n, k, s: None if n is None else (n - k) // s + 1
        return (shape[0], size(shape[1], kh, sh), size(shape[2], kw, sw), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size, "table": self.table, "strides": self.strides,
                "use_bias": self.use_bias, "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


@keras.saving.register_keras_serializable(package="cnnbuild")
class LayerScale(keras.layers.Layer):
    """x · gamma, one learned factor per channel starting at `init` (ConvNeXt's LayerScale,
    keras/src/applications/convnext.py, with the same weight: gamma of shape (C,))."""

    def __init__(self, init=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.init = float(init)

    def build(self, shape):
        self.gamma = self.add_weight(name="gamma", shape=(shape[-1],), initializer=keras.initializers.Constant(self.init))

    def call(self, x):
        return x * ops.cast(self.gamma, x.dtype)

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "init": self.init}


@keras.saving.register_keras_serializable(package="cnnbuild")
class Preprocess(keras.layers.Layer):
    """Raw uint8 images of any height and width → the model's input, through cnnbuild's one
    preprocessing function (`cnnbuild.preprocess`: the resize and scaling training used).
    Exports put it in front of the model, so a served model takes raw pixels."""

    def __init__(self, image_shape, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)

    def call(self, images):
        from ..preprocess import preprocess
        return preprocess(images, self.image_shape)

    def compute_output_shape(self, shape):
        return (shape[0], *self.image_shape)

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape}


@keras.saving.register_keras_serializable(package="cnnbuild")
class ClassId(keras.layers.Layer):
    """The index of the largest value on the last axis (the predicted class), as int64.
    It uses tf.math.argmax: keras.ops.argmax's TensorFlow graph (Bitcast, BitwiseAnd, to
    order −0.0 before 0.0) has no ONNX equivalent, and probabilities are never −0.0."""

    def call(self, x):
        import tensorflow as tf
        return tf.math.argmax(x, axis=-1, output_type=tf.int64)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape[:-1], dtype="int64")


@keras.saving.register_keras_serializable(package="cnnbuild")
class ApplicationInput(keras.layers.Layer):
    """cnnbuild's 0…1 images → the input a keras.applications model was trained on, as its
    `preprocess_input` would give from 0…255 pixels. Modes (keras/src/applications/imagenet_utils.py):
      tf     x·2 − 1 (MobileNetV2)
      caffe  0…255, RGB → BGR, minus the ImageNet mean (VGG16, ResNet50)
      torch  (x − mean) / std per channel
      raw    0…255 (EfficientNet scales inside the model)"""

    CAFFE_MEAN = (103.939, 116.779, 123.68)          # BGR
    TORCH_MEAN, TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, x):
        if self.mode == "tf":
            return x * 2.0 - 1.0
        if self.mode == "caffe":
            return ops.flip(x * 255.0, axis=-1) - ops.convert_to_tensor(self.CAFFE_MEAN, x.dtype)
        if self.mode == "torch":
            return (x - ops.convert_to_tensor(self.TORCH_MEAN, x.dtype)) / ops.convert_to_tensor(self.TORCH_STD, x.dtype)
        return x * 255.0

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="cnnbuild")
class Slice(keras.layers.Layer):
    """Columns start … stop − 1 of a (batch, n) tensor: one level's share of a sampler's single
    noise vector (families/lapgan/models.py), so the whole sampler keeps one `noise` input."""

    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, x):
        return x[:, self.start:self.stop]

    def compute_output_shape(self, shape):
        return (shape[0], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}
