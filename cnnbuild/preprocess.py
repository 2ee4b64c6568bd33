"""The one preprocessing function: raw images → the model's input. Training, evaluation,
export and prediction all call this, so there is no train/serve skew."""
from __future__ import annotations

SCALE = 1.0 / 255.0   # uint8 0…255 → float 0…1


def preprocess(images, input_shape):
    """uint8 (or float 0…255) images [batch, h, w, c] of any size → float32
    [batch, H, W, C] in 0…1, resized bilinearly and converted between grayscale and RGB
    as the spec's input needs. TensorFlow ops only, so it can live inside an export."""
    import tensorflow as tf
    height, width, channels = input_shape
    x = tf.cast(images, tf.float32)
    have = x.shape[-1]
    if have != channels:
        if have == 3 and channels == 1:
            x = tf.image.rgb_to_grayscale(x)
        elif have == 1 and channels == 3:
            x = tf.image.grayscale_to_rgb(x)
        elif have == 4 and channels in (1, 3):
            x = x[..., :3] if channels == 3 else tf.image.rgb_to_grayscale(x[..., :3])
    if x.shape[1] != height or x.shape[2] != width:
        x = tf.image.resize(x, (height, width), method="bilinear")
    return x * SCALE
