"""Augmentation of training batches: each kind of the `augment:` list, defined once.

Every augmentation is one frozen dataclass in this module: its fields are its YAML arguments
(parsed and checked by sections.py, like a layer kind's), `check` refuses what cannot apply
to the spec's input (so `cnnbuild check` reports it with file:line:column), and `apply` is
its TensorFlow implementation. `@augmentation("name")` registers it in AUGMENTATIONS, the
one registry sections.py reads; a class without `apply` is refused when this module is
imported, not in the middle of a training run. TensorFlow is imported inside `make_augment`
and handed to `apply`, as the layer kinds get Keras from their build context, so importing
this module (and `cnnbuild check`) stays free of TensorFlow.

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

import abc
import math
from typing import Annotated, ClassVar, Literal, Optional

from .errors import Invalid
from .fields import NonNegativeInt, Pair, PositiveFloat, PositiveInt, Range
from .records import record

UnitFloat = Annotated[float, Range(0, 1, low_open=True)]                       # 0 < x <= 1
OpenUnitFloat = Annotated[float, Range(0, 1, low_open=True, high_open=True)]   # 0 < x < 1
FillMode = Literal["reflect", "constant", "nearest", "wrap"]

AUGMENTATIONS: dict[str, type] = {}


def augmentation(name: str):
    """Register an augmentation kind by name, as `register` does for layer kinds."""
    def add(cls):
        if name in AUGMENTATIONS:
            raise ValueError(f"augmentation '{name}' is registered twice")
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        if missing:
            raise TypeError(f"augmentation '{name}' ({cls.__name__}) does not implement {', '.join(missing)}(): write "
                            "its TensorFlow step beside its dataclass")
        cls.kind = name
        AUGMENTATIONS[name] = cls
        return cls
    return add


class Augmentation(abc.ABC):
    kind: ClassVar[str] = ""
    main: ClassVar[Optional[str]] = None   # the argument a bare scalar stands for (`rotate: 15`)
    geometric: ClassVar[bool] = False      # moves pixels: masks move with the image
    mixes: ClassVar[bool] = False          # blends two images, and so their labels

    def check(self, input_shape) -> None:
        """Raise Invalid when the augmentation cannot apply to images of `input_shape`."""

    @abc.abstractmethod
    def apply(self, tf, images, labels, seed, segmentation):
        """One step on a batch: float images [B, H, W, C] in 0…1 and their labels (class
        numbers, one-hot rows, or masks) → the same shapes. `seed` (int64 [2]) keys every
        random choice; `tf` is TensorFlow, imported by make_augment."""

    def matrices(self, tf, seed, n, height, width):
        """[n, 3, 3] matrices mapping each output pixel (x, y, 1) to the input pixel it samples,
        when this step is one projective transform per image drawn from `seed` exactly as
        `apply` draws it; None when it is not (a crop, a photometric step). Consecutive steps
        that are transforms are fused by make_augment into one resample."""
        return None

    fill: ClassVar[Optional[str]] = None   # a transform's fill mode; None: any (a flip samples no outside pixel)


class Affine(Augmentation):
    """rotate, translate, zoom: one projective transform per image (from `transforms`),
    bilinear for images and nearest for masks, with the kind's `fill` outside the image."""

    geometric: ClassVar[bool] = True

    @abc.abstractmethod
    def transforms(self, tf, seed, n, height, width):
        """[n, 8] rows (a0 a1 a2 b0 b1 b2 0 0) mapping each output pixel (x, y) to the input
        pixel ((a0 x + a1 y + a2), (b0 x + b1 y + b2)) it samples; height and width are floats."""

    def apply(self, tf, images, labels, seed, segmentation):
        height, width = _sizes(tf, images)
        transforms = self.transforms(tf, seed, _batch(tf, images), height, width)
        return _resample(tf, images, labels, segmentation, transforms, self.fill)

    def matrices(self, tf, seed, n, height, width):
        return _as_matrices(tf, self.transforms(tf, seed, n, height, width))


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

    runs = fused_runs(ops)

    def augment(images, labels, seed):
        seed = tf.cast(seed, tf.int64)
        static = [None, height, width, images.shape[-1]]
        for run in runs:
            seeds = [tf.random.experimental.stateless_fold_in(seed, index) for index, _ in run]
            # each step keeps the size; saying so keeps the static shape in a tf.data graph
            images = tf.ensure_shape(images, static)
            if len(run) == 1:
                images, labels = run[0][1].apply(tf, images, labels, seeds[0], segmentation)
            else:
                images, labels = _fused(tf, [op for _, op in run], images, labels, seeds, segmentation)
        return tf.ensure_shape(images, static), labels
    return augment


def fused_runs(ops) -> list:
    """`ops` as runs of (index, op) applied together: consecutive projective transforms (flip,
    rotate, translate, zoom, shear) with one fill mode form one run, resampled once per image
    by the product of their matrices (as Keras's RandomRotation does with its one matrix),
    where applying them one by one resamples once per step, blurring a little each time;
    every other step is a run of its own.

    >>> [[op.kind for _, op in run] for run in fused_runs([Flip(), Rotate(10), Contrast(0.2), Zoom(0.1), Translate(0.1)])]
    [['flip', 'rotate'], ['contrast'], ['zoom', 'translate']]
    """
    runs = []
    for index, op in enumerate(ops):
        last = runs[-1] if runs else None
        if (last and _transform_kind(op) and all(_transform_kind(other) for _, other in last)
                and len({other.fill for _, other in last + [(index, op)]} - {None}) <= 1):
            last.append((index, op))
        else:
            runs.append([(index, op)])
    return runs


def _transform_kind(op) -> bool:
    return type(op).matrices is not Augmentation.matrices


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


def _as_matrices(tf, transforms):
    """[n, 8] transform rows → [n, 3, 3] matrices (the row, then 1 in the corner)."""
    ones = tf.ones_like(transforms[:, :1])
    return tf.reshape(tf.concat([transforms, ones], axis=1), [-1, 3, 3])


def _fused(tf, ops, images, labels, seeds, segmentation):
    """Consecutive transforms as one resample: output pixel p of step k samples step k−1 at
    Mₖ p, so the whole run samples the input at M₁ M₂ … Mₖ p."""
    height, width = _sizes(tf, images)
    n = _batch(tf, images)
    product = None
    for op, seed in zip(ops, seeds):
        matrices = op.matrices(tf, seed, n, height, width)
        product = matrices if product is None else tf.linalg.matmul(product, matrices)
    transforms = tf.reshape(product / product[:, 2:, 2:], [-1, 9])[:, :8]
    fill = next((op.fill for op in ops if op.fill), "reflect")
    return _resample(tf, images, labels, segmentation, transforms, fill)


def _resample(tf, images, labels, segmentation, transforms, fill):
    """One resample of images (bilinear) and, for segmentation, their masks (nearest, so
    class numbers are never blended) by the same transform rows."""
    return _both(tf, images, labels, segmentation,
                 lambda x: _transform(tf, x, transforms, "BILINEAR", fill),
                 lambda m: _transform(tf, m, transforms, "NEAREST", fill))


def _transform(tf, images, transforms, interpolation, fill):
    """Keras's own op for rotate/translate/zoom: each row of `transforms` maps an output
    pixel to the input pixel it samples."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=tf.constant(0.0, tf.float32), interpolation=interpolation, fill_mode=fill.upper())


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


# ── the augmentations: arguments, check and TensorFlow step, side by side ──────────────────

@augmentation("flip")
@record(frozen=True)
class Flip(Augmentation):
    """Mirror each image with probability ½.

    Attributes:
      mode: horizontal (left ↔ right, default), vertical (top ↔ bottom), or both.
    """

    mode: Literal["horizontal", "vertical", "both"] = "horizontal"
    main: ClassVar[str] = "mode"
    geometric: ClassVar[bool] = True

    def apply(self, tf, images, labels, seed, segmentation):
        n = _batch(tf, images)
        axes = {"horizontal": [2], "vertical": [1], "both": [2, 1]}[self.mode]
        for part, axis in enumerate(axes):
            coin = _uniform(tf, seed, [n], 0.0, 1.0, part) < 0.5

            def flip(x, axis=axis, coin=coin):
                return tf.where(tf.reshape(coin, [-1] + [1] * (len(x.shape) - 1)), tf.reverse(x, [axis]), x)
            images = flip(images)
            if segmentation:
                labels = flip(labels)
        return images, labels

    def matrices(self, tf, seed, n, height, width):
        """Per axis flipped (the same coins as `apply`): x → (W − 1) − x, or y → (H − 1) − y."""
        product = tf.eye(3, batch_shape=[n])
        for part, axis in enumerate({"horizontal": [2], "vertical": [1], "both": [2, 1]}[self.mode]):
            sign = tf.where(_uniform(tf, seed, [n], 0.0, 1.0, part) < 0.5, -1.0, 1.0)
            size = width if axis == 2 else height
            one, zero, shift = tf.ones_like(sign), tf.zeros_like(sign), (1 - sign) / 2 * (size - 1)
            rows = ([sign, zero, shift, zero, one, zero] if axis == 2 else [one, zero, zero, zero, sign, shift])
            product = tf.linalg.matmul(product, _as_matrices(tf, tf.stack(rows + [zero, zero], axis=1)))
        return product


@augmentation("rotate")
@record(frozen=True)
class Rotate(Affine):
    """Rotate each image by a random angle in [−degrees, +degrees].

    Attributes:
      degrees: the largest rotation, in degrees (0 < degrees <= 180).
      fill: how to fill pixels coming from outside: reflect (default, as Keras), constant
        (zeros), nearest, wrap.
    """

    degrees: Annotated[float, Range(0, 180, low_open=True)]
    fill: FillMode = "reflect"
    main: ClassVar[str] = "degrees"

    def transforms(self, tf, seed, n, height, width):
        angle = _uniform(tf, seed, [n], -self.degrees, self.degrees) * (math.pi / 180)
        cos, sin = tf.cos(angle), tf.sin(angle)
        x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
        y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
        zero = tf.zeros_like(cos)
        return tf.stack([cos, -sin, x_offset, sin, cos, y_offset, zero, zero], axis=1)


@augmentation("translate")
@record(frozen=True)
class Translate(Affine):
    """Shift each image by a random fraction of its height and width.

    Attributes:
      fraction: the largest shift as a fraction of the size (0.1: up to 10% either way).
      fill: reflect (default), constant, nearest, wrap.
    """

    fraction: OpenUnitFloat
    fill: FillMode = "reflect"
    main: ClassVar[str] = "fraction"

    def transforms(self, tf, seed, n, height, width):
        dy = _uniform(tf, seed, [n], -self.fraction, self.fraction, 0) * height
        dx = _uniform(tf, seed, [n], -self.fraction, self.fraction, 1) * width
        one, zero = tf.ones_like(dx), tf.zeros_like(dx)
        return tf.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)


@augmentation("zoom")
@record(frozen=True)
class Zoom(Affine):
    """Scale each image by a random factor in [1 − fraction, 1 + fraction] about its centre.

    Attributes:
      fraction: the largest relative change of size (0.2: 80% to 120%).
      fill: reflect (default), constant, nearest, wrap.
    """

    fraction: OpenUnitFloat
    fill: FillMode = "reflect"
    main: ClassVar[str] = "fraction"

    def transforms(self, tf, seed, n, height, width):
        scale = 1.0 / _uniform(tf, seed, [n], 1 - self.fraction, 1 + self.fraction)   # >1 zooms in
        cy, cx = (height - 1) / 2, (width - 1) / 2
        zero = tf.zeros_like(scale)
        return tf.stack([scale, zero, cx - cx * scale, zero, scale, cy - cy * scale, zero, zero], axis=1)


@augmentation("shear")
@record(frozen=True)
class Shear(Affine):
    """Shear each image about its centre by random factors in [−fraction, fraction], one along
    its width and one along its height (as Keras's RandomShear).

    Attributes:
      fraction: the largest shear factor (0.2: a row moves sideways up to 0.2 pixel per row
        from the centre).
      fill: reflect (default), constant, nearest, wrap.
    """

    fraction: OpenUnitFloat
    fill: FillMode = "reflect"
    main: ClassVar[str] = "fraction"

    def transforms(self, tf, seed, n, height, width):
        along_x = _uniform(tf, seed, [n], -self.fraction, self.fraction, 0)
        along_y = _uniform(tf, seed, [n], -self.fraction, self.fraction, 1)
        cy, cx = (height - 1) / 2, (width - 1) / 2
        one, zero = tf.ones_like(along_x), tf.zeros_like(along_x)
        return tf.stack([one, along_x, -along_x * cy, along_y, one, -along_y * cx, zero, zero], axis=1)


@augmentation("crop")
@record(frozen=True)
class Crop(Augmentation):
    """Pad-and-crop: pad each side by `padding`, cut a random `size` window, and resize it back
    to the input size when it is smaller (CIFAR's 4-pixel pad-and-crop is `crop: 4`).

    Attributes:
      padding: pixels added on every side (zeros) before cropping (default 0).
      size: the crop's [height, width] (or one number), at most the padded input; default:
        the input size.
    """

    padding: NonNegativeInt = 0
    size: Optional[Pair] = None
    main: ClassVar[str] = "padding"
    geometric: ClassVar[bool] = True

    def check(self, input_shape):
        height, width = input_shape[0], input_shape[1]
        size = self.size or (height, width)
        if self.padding > max(height, width):   # the padded batch grows with its square: 100000 exhausts memory
            raise Invalid(f"padding {self.padding} is more than the input's side ({height}×{width})",
                          f"pad by a few pixels (CIFAR's crop: 4), at most {max(height, width)}")
        room = (height + 2 * self.padding, width + 2 * self.padding)
        if size[0] > room[0] or size[1] > room[1]:
            padded = f" padded by {self.padding} on each side ({room[0]}×{room[1]})" if self.padding else ""
            raise Invalid(f"size {size[0]}×{size[1]} is larger than the input {height}×{width}{padded}",
                          f"use size: [{min(size[0], room[0])}, {min(size[1], room[1])}] or less, or padding: "
                          f"{max((size[0] - height + 1) // 2, (size[1] - width + 1) // 2)}")
        if size == (height, width) and self.padding == 0:
            raise Invalid(f"cropping the whole {height}×{width} input without padding changes nothing",
                          "give padding (e.g. crop: 4) or a smaller size")

    def apply(self, tf, images, labels, seed, segmentation):
        n = _batch(tf, images)
        height, width = int(images.shape[1]), int(images.shape[2])
        crop_h, crop_w = self.size or (height, width)
        pad = self.padding
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


@augmentation("contrast")
@record(frozen=True)
class Contrast(Augmentation):
    """Scale each image's contrast by a random factor in [1 − factor, 1 + factor].

    Attributes:
      factor: the largest relative change (0 < factor <= 1).
    """

    factor: UnitFloat
    main: ClassVar[str] = "factor"

    def apply(self, tf, images, labels, seed, segmentation):
        n = _batch(tf, images)
        factor = tf.reshape(_uniform(tf, seed, [n], 1 - self.factor, 1 + self.factor), [-1, 1, 1, 1])
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        return tf.clip_by_value((images - mean) * factor + mean, 0.0, 1.0), labels


@augmentation("brightness")
@record(frozen=True)
class Brightness(Augmentation):
    """Add a random offset in [−delta, +delta] to every pixel (images are 0…1 here).

    Attributes:
      delta: the largest offset, as a fraction of the value range (0 < delta <= 1).
    """

    delta: UnitFloat
    main: ClassVar[str] = "delta"

    def apply(self, tf, images, labels, seed, segmentation):
        n = _batch(tf, images)
        delta = tf.reshape(_uniform(tf, seed, [n], -self.delta, self.delta), [-1, 1, 1, 1])
        return tf.clip_by_value(images + delta, 0.0, 1.0), labels


@augmentation("cutout")
@record(frozen=True)
class Cutout(Augmentation):
    """Blank `count` random rectangles of `size` pixels in each image (DeVries & Taylor 2017).

    Attributes:
      size: the rectangle's [height, width] in pixels (or one number).
      count: how many rectangles per image (default 1).
    """

    size: Pair
    count: PositiveInt = 1
    main: ClassVar[str] = "size"

    def check(self, input_shape):
        if self.size[0] > input_shape[0] or self.size[1] > input_shape[1]:
            raise Invalid(f"size {self.size[0]}×{self.size[1]} is larger than the input "
                          f"{input_shape[0]}×{input_shape[1]}",
                          f"use size: [{min(self.size[0], input_shape[0])}, {min(self.size[1], input_shape[1])}] or less")

    def apply(self, tf, images, labels, seed, segmentation):
        n = _batch(tf, images)
        keep = tf.ones_like(images[..., :1])
        for part in range(self.count):
            box = _box_masks(tf, images, tf.random.experimental.stateless_fold_in(seed, part),
                             tf.fill([n], float(self.size[0])), tf.fill([n], float(self.size[1])))
            keep = keep * (1.0 - box)
        return images * keep, labels


@augmentation("mixup")
@record(frozen=True)
class Mixup(Augmentation):
    """Blend pairs of images and their labels with a weight drawn from Beta(alpha, alpha)
    (Zhang et al. 2018).

    Attributes:
      alpha: the Beta distribution's parameter (default 0.2; small values mix little).
    """

    alpha: PositiveFloat = 0.2
    main: ClassVar[str] = "alpha"
    mixes: ClassVar[bool] = True

    def apply(self, tf, images, labels, seed, segmentation):
        n = _batch(tf, images)
        weight = _beta(tf, seed, [n], self.alpha)
        partner = _partners(tf, seed, n)
        w_images = tf.reshape(weight, [-1, 1, 1, 1])
        images = w_images * images + (1 - w_images) * tf.gather(images, partner)
        w_labels = tf.reshape(weight, [-1] + [1] * (len(labels.shape) - 1))
        labels = w_labels * labels + (1 - w_labels) * tf.gather(labels, partner)
        return images, labels


@augmentation("cutmix")
@record(frozen=True)
class Cutmix(Augmentation):
    """Paste a random rectangle of another image; labels mix by area (Yun et al. 2019);
    for segmentation the mask's rectangle is pasted too.

    Attributes:
      alpha: the Beta distribution's parameter for the pasted area (default 1.0).
    """

    alpha: PositiveFloat = 1.0
    main: ClassVar[str] = "alpha"
    mixes: ClassVar[bool] = True

    def apply(self, tf, images, labels, seed, segmentation):
        n = _batch(tf, images)
        height, width = _sizes(tf, images)
        cut = tf.sqrt(1.0 - _beta(tf, seed, [n], self.alpha))          # the pasted box's side, as a fraction
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
