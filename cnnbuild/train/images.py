"""Images as TensorFlow reads them: decoding files and records, the wording of a decode
failure, resizing masks, and the generated `shapes` images. TensorFlow is imported inside
the functions that need it."""
from __future__ import annotations

import re

import numpy as np

from ..errors import first_line

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


# What PIL calls the formats TensorFlow's decode_image reads (MPO: a JPEG with extra frames)
DECODABLE_FORMATS = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "BMP": "bmp", "DIB": "bmp", "GIF": "gif"}


def image_header(file):
    """An image file's header (a path or a binary file object) → (channels as TensorFlow's
    decode_image gives them, None), or (None, why it cannot be read). PIL's Image.open reads
    the header only, no pixels, so this takes microseconds per file; a file whose pixel data
    is damaged passes here and is skipped while training."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(file) as image:
            kind, mode, transparent = image.format, image.mode, "transparency" in image.info
    except UnidentifiedImageError:
        return None, f"not a readable {IMAGE_KINDS} image: its format is not one PIL or TensorFlow can identify"
    except Exception as e:      # PIL raises many kinds for damaged headers (SyntaxError, OSError, struct.error)
        return None, f"not a readable {IMAGE_KINDS} image: {first_line(str(e)) or type(e).__name__}"
    if kind not in DECODABLE_FORMATS:
        return None, f"not a readable {IMAGE_KINDS} image: it is a {kind} file, which TensorFlow does not decode"
    if kind == "GIF":
        return 3, None           # TensorFlow decodes every GIF frame as RGB
    if mode == "P":
        return (4 if transparent else 3), None
    return Image.getmodebands(mode), None


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
