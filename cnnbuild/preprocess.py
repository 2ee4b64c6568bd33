"""The one preprocessing function: raw images → the model's input. Training, evaluation,
export and prediction all call this, so there is no train/serve skew."""
from __future__ import annotations

SCALE = 1.0 / 255.0   # uint8 0…255 → float 0…1
CONVERTIBLE = (1, 3, 4)   # grayscale, RGB, RGBA: what can become a grayscale or RGB input


def channels_fit(have: int, channels: int) -> bool:
    """Whether an image with `have` channels can feed an input with `channels`.

    >>> channels_fit(3, 1), channels_fit(4, 3), channels_fit(2, 3), channels_fit(5, 5)
    (True, True, False, True)
    """
    return have == channels or (have in CONVERTIBLE and channels in (1, 3))


def preprocess(images, input_shape):
    """uint8 (or float 0…255) images [batch, h, w, c] of any size → float32
    [batch, H, W, C] in 0…1, resized bilinearly and converted between grayscale and RGB
    as the spec's input needs. TensorFlow ops only, so it can live inside an export."""
    return fitted(images, input_shape) * SCALE


def fitted(images, input_shape):
    """`preprocess` before its scaling: float32 0…255 at the input's size and channels.

    The channel count may be unknown until run time (images decoded from files of mixed
    kinds); then the conversion is chosen per image."""
    import tensorflow as tf
    height, width, channels = input_shape
    x = tf.cast(images, tf.float32)
    have = x.shape[-1]
    if have is None:
        count = tf.shape(x)[-1]
        x = tf.case([(tf.equal(count, c), lambda c=c: _convert(tf, tf.ensure_shape(x, [None, None, None, c]), c, channels))
                     for c in sorted({channels, *CONVERTIBLE}) if channels_fit(c, channels)],
                    default=lambda: _refuse(tf, x, count, channels), exclusive=True)
    elif have != channels:
        if not channels_fit(have, channels):
            raise ValueError(f"images with {have} channels cannot feed an input with {channels} "
                             f"(convertible: 1, 3 or 4 channels to 1 or 3)")
        x = _convert(tf, x, have, channels)
    if x.shape[1] != height or x.shape[2] != width:
        x = tf.image.resize(x, (height, width), method="bilinear")
    return x


def fitted_uint8(images, input_shape):
    """`fitted` rounded back to uint8: what training keeps between decoding and batching (its
    cache and shuffle buffer hold a quarter of float32's bytes); `preprocess` of a batch of
    them then only scales. uint8 images already of the input's size and channels pass
    unchanged, without a float32 copy (a decoded file's size is known only at run time);
    resized or converted ones are within half a level (0.5/255 after scaling) of `fitted`."""
    import tensorflow as tf

    def rounded():
        return tf.saturate_cast(tf.round(fitted(images, input_shape)), tf.uint8)
    if images.dtype != tf.uint8:
        return rounded()
    if images.shape[1:].is_fully_defined():
        return images if tuple(images.shape[1:]) == tuple(input_shape) else rounded()
    fits = tf.reduce_all(tf.equal(tf.shape(images)[1:], tf.constant(input_shape, tf.int32)))
    return tf.cond(fits, lambda: tf.ensure_shape(images, [None, *input_shape]), rounded)


def _convert(tf, x, have, channels):
    if have == channels:
        return x
    if have == 1:
        return tf.image.grayscale_to_rgb(x)
    rgb = x[..., :3]
    return rgb if channels == 3 else tf.image.rgb_to_grayscale(rgb)


def _refuse(tf, x, count, channels):
    check = tf.debugging.Assert(False, ["image has", count, f"channels; the input needs {channels}"])
    with tf.control_dependencies([check]):
        return tf.zeros(tf.concat([tf.shape(x)[:-1], [channels]], 0), tf.float32)


DARK, LIGHT = 64, 192   # a background darker than 64 of 255 is dark, lighter than 192 light; between: neither


def background(pixels) -> float:
    """An image's background level, 0…255: the mean of its outermost rows and columns over all
    channels (a digit or a shape seldom touches the frame; the paper or the screen does).

    >>> import numpy as np
    >>> ink = np.zeros((8, 8, 1), np.uint8); ink[2:6, 3:5] = 255
    >>> background(ink), background(255 - ink)
    (0.0, 255.0)
    """
    import numpy as np
    x = np.asarray(pixels, np.float64)
    frame = np.concatenate([x[0].ravel(), x[-1].ravel(), x[:, 0].ravel(), x[:, -1].ravel()])
    return float(frame.mean())


def polarity(level: float) -> str | None:
    """'light on dark' (a dark background), 'dark on light', or None for neither."""
    return "light on dark" if level < DARK else "dark on light" if level > LIGHT else None

