"""Augmentation of training batches: the `augment:` list turned into one TensorFlow function.

    augment = make_augment(spec.augment, input_shape, task)
    images, labels = augment(images, labels, seed)     # a batch; seed: int64 [2]

Every random choice is a stateless op keyed by `seed` (the data pipeline passes
(run seed, epoch, batch number); `augment_on: device` passes (run seed, optimizer step)),
so a run — resumed or not — sees the same augmented batches, whatever the parallelism.
Images are float 0…1 (after `preprocess`). Geometric operations move segmentation masks
with their images (nearest neighbour, so class numbers are never blended); photometric ones
leave masks alone; mixup and cutmix blend labels too (they need one-hot labels, which
train.py asks the pipeline for).

Augmentation is applied to training batches only: never to validation, evaluation,
prediction, or the saved model.
"""
from __future__ import annotations

import math

from .sections import Brightness, Contrast, Crop, Cutmix, Cutout, Flip, Mixup, Rotate, Translate, Zoom


def needs_dense_labels(ops) -> bool:
    return any(op.mixes for op in ops)


def make_augment(ops, input_shape, task, label_shape=()):
    """One function (images, labels, seed) → (images, labels) applying `ops` in order, or
    None when there is nothing to do."""
    if not ops:
        return None
    import tensorflow as tf
    height, width = input_shape[0], input_shape[1]
    segmentation = task == "segmentation"
    if segmentation and any(op.geometric for op in ops) and tuple(label_shape) != (height, width):
        from .errors import UsageError
        raise UsageError(f"geometric augmentation (flip, rotate, translate, zoom, crop) moves masks with their images, "
                         f"so the model's output ({label_shape[0]}×{label_shape[1]}) must have the input's size "
                         f"({height}×{width})")
    steps = [(_STEPS[type(op)], op) for op in ops]

    def augment(images, labels, seed):
        seed = tf.cast(seed, tf.int64)
        static = [None, height, width, images.shape[-1]]
        for index, (step, op) in enumerate(steps):
            op_seed = tf.random.experimental.stateless_fold_in(seed, index)
            # each step keeps the size; saying so keeps the static shape in a tf.data graph
            images, labels = step(tf, op, tf.ensure_shape(images, static), labels, op_seed, segmentation)
        return tf.ensure_shape(images, static), labels
    return augment


# ── helpers ────────────────────────────────────────────────────────────────────────────────

def _uniform(tf, seed, shape, low, high, part=0):
    return tf.random.stateless_uniform(shape, tf.random.experimental.stateless_fold_in(seed, part), low, high)


def _batch(tf, images):
    return tf.shape(images)[0]


def _mask_as_image(tf, labels):
    """Masks as float [B, H, W, C] for image ops, and the way back to their own type."""
    if labels.dtype.is_integer:
        dtype = labels.dtype
        return tf.cast(labels[..., None], tf.float32), lambda x: tf.cast(tf.round(x[..., 0]), dtype)
    return labels, lambda x: x


def _both(tf, images, labels, segmentation, image_fn, mask_fn):
    """Apply a geometric transform to the images and, for segmentation, to the masks."""
    images = image_fn(images)
    if segmentation:
        as_image, back = _mask_as_image(tf, labels)
        labels = back(mask_fn(as_image))
    return images, labels


def _transform(tf, images, transforms, interpolation, fill):
    """Keras's own op for rotate/translate/zoom: each row of `transforms` maps an output
    pixel to the input pixel it samples."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=tf.constant(0.0, tf.float32), interpolation=interpolation, fill_mode=fill.upper())


def _affine(tf, images, labels, segmentation, transforms, fill):
    return _both(tf, images, labels, segmentation,
                 lambda x: _transform(tf, x, transforms, "BILINEAR", fill),
                 lambda m: _transform(tf, m, transforms, "NEAREST", fill))


def _sizes(tf, images):
    shape = tf.shape(images)
    return tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)


def _beta(tf, seed, shape, alpha):
    """Beta(alpha, alpha) from two gammas (stateless)."""
    a = tf.random.stateless_gamma(shape, tf.random.experimental.stateless_fold_in(seed, 11), alpha)
    b = tf.random.stateless_gamma(shape, tf.random.experimental.stateless_fold_in(seed, 12), alpha)
    return a / (a + b + 1e-12)


def _partners(tf, seed, n):
    """A random permutation of the batch: whom each image is mixed with."""
    return tf.argsort(tf.random.stateless_uniform([n], tf.random.experimental.stateless_fold_in(seed, 13)))


def _box_masks(tf, images, seed, box_h, box_w):
    """[B, H, W, 1] masks, 1 inside a random box of box_h × box_w (clipped at the border)."""
    n = _batch(tf, images)
    height, width = _sizes(tf, images)
    cy = _uniform(tf, seed, [n], 0.0, 1.0, 21) * height
    cx = _uniform(tf, seed, [n], 0.0, 1.0, 22) * width
    rows = tf.range(height)[None, :] + 0.5
    cols = tf.range(width)[None, :] + 0.5
    in_rows = tf.abs(rows - cy[:, None]) < box_h[:, None] / 2
    in_cols = tf.abs(cols - cx[:, None]) < box_w[:, None] / 2
    return tf.cast(tf.logical_and(in_rows[:, :, None], in_cols[:, None, :]), tf.float32)[..., None]


# ── the augmentations, one function each ───────────────────────────────────────────────────

def _flip(tf, op: Flip, images, labels, seed, segmentation):
    n = _batch(tf, images)
    axes = {"horizontal": [2], "vertical": [1], "both": [2, 1]}[op.mode]
    for part, axis in enumerate(axes):
        coin = _uniform(tf, seed, [n], 0.0, 1.0, part) < 0.5

        def flip(x, axis=axis, coin=coin):
            return tf.where(tf.reshape(coin, [-1] + [1] * (len(x.shape) - 1)), tf.reverse(x, [axis]), x)
        images = flip(images)
        if segmentation:
            labels = flip(labels)
    return images, labels


def _rotate(tf, op: Rotate, images, labels, seed, segmentation):
    n = _batch(tf, images)
    height, width = _sizes(tf, images)
    angle = _uniform(tf, seed, [n], -op.degrees, op.degrees) * (math.pi / 180)
    cos, sin = tf.cos(angle), tf.sin(angle)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
    zero = tf.zeros_like(cos)
    transforms = tf.stack([cos, -sin, x_offset, sin, cos, y_offset, zero, zero], axis=1)
    return _affine(tf, images, labels, segmentation, transforms, op.fill)


def _translate(tf, op: Translate, images, labels, seed, segmentation):
    n = _batch(tf, images)
    height, width = _sizes(tf, images)
    dy = _uniform(tf, seed, [n], -op.fraction, op.fraction, 0) * height
    dx = _uniform(tf, seed, [n], -op.fraction, op.fraction, 1) * width
    one, zero = tf.ones_like(dx), tf.zeros_like(dx)
    transforms = tf.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)
    return _affine(tf, images, labels, segmentation, transforms, op.fill)


def _zoom(tf, op: Zoom, images, labels, seed, segmentation):
    n = _batch(tf, images)
    height, width = _sizes(tf, images)
    scale = 1.0 / _uniform(tf, seed, [n], 1 - op.fraction, 1 + op.fraction)   # >1 zooms in
    cy, cx = (height - 1) / 2, (width - 1) / 2
    zero = tf.zeros_like(scale)
    transforms = tf.stack([scale, zero, cx - cx * scale, zero, scale, cy - cy * scale, zero, zero], axis=1)
    return _affine(tf, images, labels, segmentation, transforms, op.fill)


def _crop(tf, op: Crop, images, labels, seed, segmentation):
    n = _batch(tf, images)
    height, width = int(images.shape[1]), int(images.shape[2])
    crop_h, crop_w = op.size or (height, width)
    pad = op.padding
    padded_h, padded_w = height + 2 * pad, width + 2 * pad
    oy = tf.floor(_uniform(tf, seed, [n], 0.0, 1.0, 0) * (padded_h - crop_h + 1))
    ox = tf.floor(_uniform(tf, seed, [n], 0.0, 1.0, 1) * (padded_w - crop_w + 1))
    # crop_and_resize samples box corners at pixel centres: a box of crop_h rows starting at
    # row oy is [oy, oy + crop_h − 1] / (padded_h − 1) in its normalised coordinates.
    boxes = tf.stack([oy / max(padded_h - 1, 1), ox / max(padded_w - 1, 1),
                      (oy + crop_h - 1) / max(padded_h - 1, 1), (ox + crop_w - 1) / max(padded_w - 1, 1)], axis=1)
    index = tf.range(n)

    def cut(x, method):
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) if pad else x
        return tf.image.crop_and_resize(x, boxes, index, (height, width), method=method)
    return _both(tf, images, labels, segmentation, lambda x: cut(x, "bilinear"), lambda m: cut(m, "nearest"))


def _contrast(tf, op: Contrast, images, labels, seed, segmentation):
    n = _batch(tf, images)
    factor = tf.reshape(_uniform(tf, seed, [n], 1 - op.factor, 1 + op.factor), [-1, 1, 1, 1])
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    return tf.clip_by_value((images - mean) * factor + mean, 0.0, 1.0), labels


def _brightness(tf, op: Brightness, images, labels, seed, segmentation):
    n = _batch(tf, images)
    delta = tf.reshape(_uniform(tf, seed, [n], -op.delta, op.delta), [-1, 1, 1, 1])
    return tf.clip_by_value(images + delta, 0.0, 1.0), labels


def _cutout(tf, op: Cutout, images, labels, seed, segmentation):
    n = _batch(tf, images)
    keep = tf.ones_like(images[..., :1])
    for part in range(op.count):
        box = _box_masks(tf, images, tf.random.experimental.stateless_fold_in(seed, part),
                         tf.fill([n], float(op.size[0])), tf.fill([n], float(op.size[1])))
        keep = keep * (1.0 - box)
    return images * keep, labels


def _mixup(tf, op: Mixup, images, labels, seed, segmentation):
    n = _batch(tf, images)
    weight = _beta(tf, seed, [n], op.alpha)
    partner = _partners(tf, seed, n)
    w_images = tf.reshape(weight, [-1, 1, 1, 1])
    images = w_images * images + (1 - w_images) * tf.gather(images, partner)
    w_labels = tf.reshape(weight, [-1] + [1] * (len(labels.shape) - 1))
    labels = w_labels * labels + (1 - w_labels) * tf.gather(labels, partner)
    return images, labels


def _cutmix(tf, op: Cutmix, images, labels, seed, segmentation):
    n = _batch(tf, images)
    height, width = _sizes(tf, images)
    cut = tf.sqrt(1.0 - _beta(tf, seed, [n], op.alpha))          # the pasted box's side, as a fraction
    box = _box_masks(tf, images, seed, cut * height, cut * width)
    partner = _partners(tf, seed, n)
    images = box * tf.gather(images, partner) + (1 - box) * images
    if segmentation:
        labels = box * tf.gather(labels, partner) + (1 - box) * labels
    else:
        pasted = tf.reduce_mean(box, axis=[1, 2, 3])                # the area actually pasted (clipped)
        share = tf.reshape(pasted, [-1, 1])
        labels = (1 - share) * labels + share * tf.gather(labels, partner)
    return images, labels


_STEPS = {Flip: _flip, Rotate: _rotate, Translate: _translate, Zoom: _zoom, Crop: _crop, Contrast: _contrast,
          Brightness: _brightness, Cutout: _cutout, Mixup: _mixup, Cutmix: _cutmix}
