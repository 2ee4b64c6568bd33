"""Images as TensorFlow reads them: decoding files and records, the wording of a decode
failure, resizing masks, and the generated `shapes` images. TensorFlow is imported inside
the functions that need it."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import first_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
IMAGE_KINDS = "png/jpg/bmp/gif"      # IMAGE_SUFFIXES as a user names them
SHAPE_CLASSES = ("circle", "square", "triangle")


def op_error_text(error) -> str:
    """A TensorFlow op error (or its message) as a user reads it: the first line, without
    the '{{function_node __wrapped__DecodeImage_device_/job:localhost/…}}' prefix and the
    ' [Op:DecodeImage] name:' suffix that eager TensorFlow adds.

    >>> op_error_text("{{function_node __wrapped__X}} Invalid PNG. [Op:DecodeImage] name: ")
    'Invalid PNG.'
    """
    text = first_line(getattr(error, "message", None) or str(error))
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", re.sub(r"^\{\{[^}]*\}\}\s*", "", text))
    return text or "unknown error"


def unreadable_image(error) -> str:
    """The one wording for an image file that cannot be decoded, said by training's data scan
    and by predict alike (each puts the file's name first): 'not a readable png/jpg/bmp/gif
    image: ' and TensorFlow's reason."""
    return f"not a readable {IMAGE_KINDS} image: {op_error_text(error)}"


def image_files(folder) -> list:
    """The image files directly in `folder` (by suffix, hidden files left out), sorted."""
    return sorted(str(p) for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def try_all(items, fn):
    """Run a TensorFlow function over every item in parallel (tf.data), tolerating failures;
    re-run the failures one at a time to get their messages. Returns ({index: result},
    {index: message})."""
    import tensorflow as tf
    dataset = tf.data.Dataset.from_tensor_slices(items).enumerate()
    dataset = dataset.map(lambda i, item: (i, fn(item)), num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    results = {int(i): value for i, value in dataset.as_numpy_iterator()}
    errors = {}
    for i, item in enumerate(items):
        if i not in results:
            try:
                fn(tf.constant(item))
                errors[i] = "could not be decoded"
            except (tf.errors.OpError, ValueError) as e:
                errors[i] = op_error_text(e)
    return results, errors


def decode_image(path):
    """A file (png, jpg, bmp, gif) → uint8 [h, w, c] as stored; the channel count is known at
    run time only, and `preprocess` converts it."""
    import tensorflow as tf
    return tf.io.decode_image(tf.io.read_file(path), channels=0, expand_animations=False, dtype=tf.uint8)


def record_parser(source, task):
    """A function raw tfrecord bytes → (uint8 image [h, w, c], label or mask)."""
    import tensorflow as tf
    if task == "segmentation":
        features = {source.image_feature: tf.io.FixedLenFeature([], tf.string),
                    source.mask_feature: tf.io.FixedLenFeature([], tf.string)}
    else:
        features = {source.image_feature: tf.io.FixedLenFeature([], tf.string),
                    source.label_feature: tf.io.FixedLenFeature([], tf.int64)}

    def parse(raw):
        example = tf.io.parse_single_example(raw, features)
        image = tf.io.decode_image(example[source.image_feature], channels=0, expand_animations=False, dtype=tf.uint8)
        if task == "segmentation":
            return image, tf.io.decode_png(example[source.mask_feature], channels=1)[..., 0]
        return image, example[source.label_feature]
    return parse


def resize_masks(masks, size):
    """Masks [N, h, w] → [N, H, W] by nearest neighbour (class numbers are not blended)."""
    import tensorflow as tf
    masks = np.asarray(masks)
    if tuple(masks.shape[1:3]) == tuple(size):
        return masks
    out = tf.image.resize(masks[..., None], size, method="nearest")
    return out.numpy()[..., 0].astype(masks.dtype)


def generate_shapes(count, height, width, channels, seed):
    """`count` images (uint8 [count, height, width, channels]) of one shape each on a noisy
    background, with class labels (0 circle, 1 square, 2 triangle) and masks (0 background,
    1 + class inside the shape). Colour, size and position vary; the same seed gives the
    same images."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    images = np.empty((count, height, width, channels), np.uint8)
    masks = np.zeros((count, height, width), np.uint8)
    labels = rng.integers(0, len(SHAPE_CLASSES), count).astype(np.int32)
    side = min(height, width)
    for i in range(count):
        radius = rng.uniform(0.18, 0.38) * side
        cy = rng.uniform(radius, height - radius)
        cx = rng.uniform(radius, width - radius)
        dy, dx = rows - cy, cols - cx
        if labels[i] == 0:
            inside = dy * dy + dx * dx <= radius * radius
        elif labels[i] == 1:
            half = radius * 0.8                  # a square of about the circle's area
            inside = (np.abs(dy) <= half) & (np.abs(dx) <= half)
        else:                                    # an upward triangle inscribed in the circle
            inside = (dy >= -radius) & (dy <= radius / 2) & (np.abs(dx) * np.sqrt(3) <= dy + radius)
        background = rng.uniform(0, 90, channels)
        colour = rng.uniform(140, 255, channels)
        noise = rng.normal(0, 12, (height, width, channels))
        image = np.where(inside[..., None], colour, background) + noise
        images[i] = np.clip(np.round(image), 0, 255).astype(np.uint8)
        masks[i][inside] = labels[i] + 1
    return images, labels, masks
