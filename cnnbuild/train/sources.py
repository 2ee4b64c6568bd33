"""The data sources, one function each, found by `data.source`'s kind in `SOURCES`:

    digits     scikit-learn's bundled 8×8 scans (the offline default)
    shapes     generated, seeded circles, squares and triangles, with masks
    npz        arrays x and y (or masks) in one file
    directory  class sub-folders; images/ + masks/ for segmentation
    tfrecord   an encoded image and a label (or an encoded mask) per record
    tfds       a prepared tensorflow-datasets dataset, downloaded only when asked

Each reads and checks everything up front and returns a `Part`: bad data is found before
training starts, and each failure names the file (with `on_bad: skip` the item is left
out and counted instead).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import first_line
from ..preprocess import channels_fit
from ..parse.sections import TFRECORD_SUFFIXES
from .images import (IMAGE_SUFFIXES, SHAPE_CLASSES, decode_image, generate_shapes, image_files, op_error_text,
                     record_parser, resize_masks, try_all, unreadable_image)

DIGITS_MAX = 16          # load_digits' pixel values are 0…16


class DataError(Exception):
    """The data cannot be used; the message names the file (and how to fix it)."""


@dataclass(frozen=True)
class Part:
    """One split (train or validation) before decoding. Item i is row i of `columns`
    (equal-length arrays or lists by name: image and label, path and label, record, or
    position in a tfds split); `dataset(columns)` turns the rows into a tf.data.Dataset of
    (uint8 image [h, w, c], label or mask). `classes`: the class names in label order."""

    columns: dict
    dataset: Callable
    classes: list

    @property
    def count(self) -> int:
        return len(next(iter(self.columns.values())))

    def select(self, indices) -> "Part":
        """The items at `indices`, in stored order (for the validation split)."""
        indices = np.sort(np.asarray(indices, dtype=np.int64))
        return replace(self, columns={name: column[indices] if isinstance(column, np.ndarray)
                                      else [column[i] for i in indices] for name, column in self.columns.items()})


def _in_memory(columns):
    """Arrays already decoded: (images, labels) as they are."""
    import tensorflow as tf
    return tf.data.Dataset.from_tensor_slices((columns["image"], columns["label"]))


@dataclass
class Reading:
    """What every source checks against (the model's task and outputs, the spec's input) and
    how a bad item is reported: an error, or with `on_bad: skip` a (file, reason) in `skipped`."""

    task: str                 # classification | segmentation
    outputs: int              # the model's last axis
    label_shape: tuple        # (H, W) of the masks for segmentation, () otherwise
    input_shape: tuple
    skip: bool
    skipped: list = field(default_factory=list)

    @property
    def labels(self) -> int:
        return 2 if self.outputs == 1 else self.outputs      # a sigmoid output is two classes

    def bad(self, file, reason, hint=""):
        """A bad item: an error, or (on_bad: skip) counted and left out."""
        if self.skip:
            self.skipped.append((str(file), reason))
            return
        raise DataError(f"{file}: {reason}" + (f"\n  hint: {hint}" if hint else "") +
                        ("\n  hint: set data.on_bad: skip to leave such files out" if not hint else ""))

    def classes_must_match(self, what, names):
        if len(names) != self.labels:
            listed = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
            raise DataError(f"{what} has {len(names)} classes ({listed}), but the model's last layer has "
                            f"{self.outputs} output{'s' if self.outputs > 1 else ''}\n  hint: give the last layer "
                            f"{len(names)} units (or filters), or use data that matches it")

    def check_channels(self, file, have):
        channels = self.input_shape[2]
        if not channels_fit(have, channels):
            raise DataError(f"{file}: images have {have} channels; the spec's input has {channels} "
                            "(1, 3 or 4 channels convert to 1 or 3)")

    def labels_in_range(self, y, where) -> np.ndarray:
        """The rows whose labels (or mask values) are classes of the model; reports the others."""
        flat = y.reshape(len(y), -1)
        wrong = np.any((flat < 0) | (flat >= self.labels), axis=1)
        for i in np.flatnonzero(wrong):
            values = flat[i][(flat[i] < 0) | (flat[i] >= self.labels)]
            what = f"y[{i}] = {values[0]}" if self.task == "classification" else f"mask y[{i}] has value {values[0]}"
            self.bad(where, f"{what} is not a class of the model's {self.outputs} output{'s' if self.outputs > 1 else ''} "
                            f"(0…{self.labels - 1})", "fix the labels, or give the model one output per class")
        return ~wrong

    def scan_images(self, paths) -> list:
        """Decode every file once, in parallel, with the decoder the pipeline uses; report the
        ones that fail or whose channels do not fit. Returns the indices of the good ones."""
        if not paths:
            return []
        import tensorflow as tf
        results, errors = try_all(paths, lambda p: tf.shape(decode_image(p)))
        good = []
        for i, path in enumerate(paths):
            if i in errors:
                self.bad(path, unreadable_image(errors[i]), "replace or delete the file, or set data.on_bad: skip to "
                                                            "leave such files out")
                continue
            shape = results[i]
            if not channels_fit(int(shape[-1]), self.input_shape[2]):
                self.bad(path, f"has {int(shape[-1])} channels; the spec's input has {self.input_shape[2]} "
                               "(1, 3 or 4 channels convert to 1 or 3)")
                continue
            good.append(i)
        return good

    def read_mask(self, path):
        """A mask file → [H, W] uint8 class numbers at the output size (nearest neighbour), or None."""
        from PIL import Image
        try:
            with Image.open(path) as image:
                image.load()
                mode = image.mode
                mask = np.asarray(image)
        except Exception as e:      # PIL raises many kinds for damaged files
            self.bad(path, f"is not a readable image ({e})")
            return None
        if mask.ndim == 3:
            if mode in ("LA", "RGBA", "PA") and mask.shape[-1] in (2, 4):
                mask = mask[..., :-1]
            if not np.all(mask == mask[..., :1]):
                self.bad(path, "mask has colours; masks are single-channel images whose values are class numbers",
                         "save masks as grayscale or palette PNGs (pixel value = class)")
                return None
            mask = mask[..., 0]
        mask = mask.astype(np.int64)
        values = np.unique(mask)
        if self.labels == 2 and set(values.tolist()) <= {0, 255}:
            mask = mask // 255                    # a black-and-white mask
        if mask.min() < 0 or mask.max() >= self.labels:
            self.bad(path, f"mask value {mask.max()} is not a class of the model's {self.outputs} outputs "
                           f"(0…{self.labels - 1})", "mask pixel values must be class numbers")
            return None
        return resize_masks(mask[None].astype(np.uint8), self.label_shape)[0]


# ── the registry ──────────────────────────────────────────────────────────────────────────

SOURCES: dict[str, Callable] = {}


def source(kind: str):
    """Register `read(data, reading, seed) -> Part` as the reader of data source `kind`; `data`
    is the spec's `data:` section (or its `validation:` source)."""
    def register(read):
        if kind in SOURCES:
            raise ValueError(f"data source '{kind}' is registered twice")
        SOURCES[kind] = read
        return read
    return register


@source("digits")
def read_digits(data, reading: Reading, seed) -> Part:
    """scikit-learn's bundled 8×8 scans, 0…16 → 0…255."""
    if reading.task != "classification":
        raise DataError("digits has class labels, not masks: segmentation needs data.source shapes, a directory "
                        "with images/ and masks/, or an npz with masks")
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.round(digits.images * (255.0 / DIGITS_MAX)).astype(np.uint8)[..., None]
    classes = [str(i) for i in range(10)]
    reading.classes_must_match("digits", classes)
    return Part({"image": images, "label": digits.target.astype(np.int32)}, _in_memory, classes)


@source("shapes")
def read_shapes(data, reading: Reading, seed) -> Part:
    """Generated circles, squares and triangles, with masks."""
    height, width, channels = reading.input_shape
    images, labels, masks = generate_shapes(data.samples, height, width, channels, seed)
    if reading.task == "classification":
        classes = list(SHAPE_CLASSES)
        reading.classes_must_match("shapes", classes)
        return Part({"image": images, "label": labels}, _in_memory, classes)
    if reading.labels == 2:                     # foreground / background
        return Part({"image": images, "label": (masks > 0).astype(np.uint8)}, _in_memory, ["background", "shape"])
    classes = ["background", *SHAPE_CLASSES]
    reading.classes_must_match("shapes masks", classes)
    return Part({"image": images, "label": masks}, _in_memory, classes)


@source("npz")
def read_npz(data, reading: Reading, seed) -> Part:
    """Arrays x [N, h, w(, c)] and y [N] or masks [N, h, w]; optionally `classes`."""
    path = Path(data.location)
    if not path.is_file():
        raise DataError(f"{path}: no such file" if not path.exists() else f"{path}: is not a file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.keys())
            for key in ("x", "y"):
                if key not in names:
                    raise DataError(f"{path}: has no array '{key}' (it has: {', '.join(names) or 'nothing'})\n"
                                    "  hint: save with np.savez(path, x=images, y=labels)")
            x, y = archive["x"], archive["y"]
            stored_classes = [str(c) for c in archive["classes"]] if "classes" in names else None
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(f"{path}: holds Python objects; cnnbuild reads plain numeric arrays only "
                            "(loaded with allow_pickle=False)") from None
        raise DataError(f"{path}: cannot be read as .npz: {e}") from None
    except Exception as e:   # zipfile.BadZipFile, OSError, EOFError: a damaged file
        raise DataError(f"{path}: cannot be read as .npz: {e}") from None
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or len(x) == 0:
        raise DataError(f"{path}: x must be images [N, height, width] or [N, height, width, channels], "
                        f"got shape {list(x.shape)}")
    reading.check_channels(f"{path}: x", x.shape[-1])
    x = _as_uint8(x, path)
    if len(y) != len(x):
        raise DataError(f"{path}: x has {len(x)} images but y has {len(y)} labels")
    if reading.task == "classification":
        y = y.reshape(len(y), -1)
        if y.shape[1] != 1:
            raise DataError(f"{path}: y must hold one class number per image, got shape {list(y.shape)}")
        y = y[:, 0]
    else:
        if y.ndim == 4 and y.shape[-1] == 1:
            y = y[..., 0]
        if y.ndim != 3:
            raise DataError(f"{path}: for segmentation y must be masks [N, height, width], got shape {list(y.shape)}")
        if y.shape[1:3] != x.shape[1:3]:
            raise DataError(f"{path}: masks are {y.shape[1]}×{y.shape[2]} but images {x.shape[1]}×{x.shape[2]}; "
                            "each mask must match its image")
    if not np.issubdtype(y.dtype, np.integer) and not (np.issubdtype(y.dtype, np.floating) and
                                                       np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        raise DataError(f"{path}: y must hold whole class numbers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    keep = reading.labels_in_range(y, path)
    x, y = x[keep], y[keep]
    if stored_classes is not None:
        reading.classes_must_match(str(path), stored_classes)
        classes = stored_classes
    else:
        classes = [str(i) for i in range(reading.labels)]
    return Part({"image": x, "label": y.astype(np.int32)}, _in_memory, classes)


def _as_uint8(x, path) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{path}: x must hold numbers 0…255, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise DataError(f"{path}: x holds NaN or infinite values")
    low, high = x.min(), x.max()
    if low < 0 or high > 255:
        raise DataError(f"{path}: x values must be 0…255 (like 8-bit images), got {low}…{high}")
    return np.round(x).astype(np.uint8)


def _decoded_files(columns):
    """Image files, decoded as they are read: (image, label or mask)."""
    import tensorflow as tf
    data = tf.data.Dataset.from_tensor_slices((columns["path"], columns["label"]))
    return data.map(lambda path, label: (decode_image(path), label), num_parallel_calls=tf.data.AUTOTUNE)


@source("directory")
def read_directory(data, reading: Reading, seed) -> Part:
    """Class sub-folders, or images/ + masks/ for segmentation."""
    root = Path(data.location)
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: is not a folder")
    if reading.task == "segmentation":
        return _image_and_mask_folders(root, reading)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: has no class sub-folders\n  hint: put each class's images in its own folder: "
                        f"{root}/cat/1.png, {root}/dog/1.png")
    classes = [p.name for p in folders]
    reading.classes_must_match(str(root), classes)
    paths, labels = [], []
    for label, folder in enumerate(folders):
        files = image_files(folder)
        if not files:
            reading.bad(folder, f"class folder '{folder.name}' has no images ({', '.join(IMAGE_SUFFIXES)})",
                        "add images, or remove the folder")
        paths += files
        labels += [label] * len(files)
    good = reading.scan_images(paths)
    return Part({"path": [paths[i] for i in good], "label": np.asarray(labels, np.int32)[good]}, _decoded_files, classes)


def _image_and_mask_folders(root, reading: Reading) -> Part:
    images_dir, masks_dir = root / "images", root / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder\n  hint: for segmentation put images in {images_dir} and "
                            f"masks (PNG, pixel value = class number) with the same names in {masks_dir}")
    files = image_files(images_dir)
    if not files:
        raise DataError(f"{images_dir}: has no images ({', '.join(IMAGE_SUFFIXES)})")
    masks_by_stem = {}
    for mask in image_files(masks_dir):
        masks_by_stem.setdefault(Path(mask).stem, mask)
    paths, mask_paths = [], []
    for file in files:
        mask = masks_by_stem.get(Path(file).stem)
        if mask is None:
            reading.bad(file, f"has no mask in {masks_dir} (looked for {Path(file).stem}.png)")
            continue
        paths.append(file)
        mask_paths.append(mask)
    good = reading.scan_images(paths)
    paths, mask_paths = [paths[i] for i in good], [mask_paths[i] for i in good]
    masks, keep = [], []
    for i, mask_path in enumerate(mask_paths):
        mask = reading.read_mask(mask_path)
        if mask is not None:
            masks.append(mask)
            keep.append(i)
    paths = [paths[i] for i in keep]
    if not paths:
        raise DataError(f"{root}: no usable image and mask pairs")
    return Part({"path": paths, "label": np.stack(masks)}, _decoded_files,
                ["background"] + [f"class_{i}" for i in range(1, reading.labels)])


@source("tfrecord")
def read_tfrecord(data, reading: Reading, seed) -> Part:
    """Records with an encoded image and a label (or an encoded mask)."""
    import tensorflow as tf
    pattern = data.location
    if os.path.isdir(pattern):
        files = sorted(f for f in glob.glob(os.path.join(pattern, "*")) if f.lower().endswith(TFRECORD_SUFFIXES))
    else:
        files = sorted(glob.glob(pattern))
    if not files:
        raise DataError(f"{pattern}: no such file" + (" (no .tfrecord files in the folder)" if os.path.isdir(pattern) else ""))
    parse = record_parser(data, reading.task)
    records, where = [], []
    for file in files:
        count = 0
        try:
            for raw in tf.data.TFRecordDataset(file):
                records.append(raw.numpy())
                where.append(f"{file}: record {count}")
                count += 1
        except tf.errors.OpError as e:
            reading.bad(file, f"is damaged after {count} records: {op_error_text(e)}")
    if not records:
        raise DataError(f"{pattern}: holds no records")

    def check(raw):
        image, label = parse(raw)
        return tf.shape(image), tf.reduce_min(label), tf.reduce_max(label)
    results, errors = try_all(records, check)
    good = []
    for i, place in enumerate(where):
        if i in errors:
            reading.bad(place, f"cannot be read: {errors[i]}",
                        f"records need features '{data.image_feature}' (encoded image bytes) and "
                        f"'{data.mask_feature if reading.task == 'segmentation' else data.label_feature}'"
                        f"{' (encoded PNG)' if reading.task == 'segmentation' else ' (int64)'}; set data.image_feature / "
                        f"data.{'mask' if reading.task == 'segmentation' else 'label'}_feature to your names")
            continue
        shape, low, high = results[i]
        if not channels_fit(int(shape[-1]), reading.input_shape[2]):
            reading.bad(place, f"image has {int(shape[-1])} channels; the spec's input has {reading.input_shape[2]}")
            continue
        if low < 0 or high >= reading.labels:
            value = low if low < 0 else high
            reading.bad(place, f"{'label' if reading.task == 'classification' else 'mask value'} {value} is not a "
                               f"class of the model's {reading.outputs} outputs (0…{reading.labels - 1})")
            continue
        good.append(i)

    def parsed(columns):
        return tf.data.Dataset.from_tensor_slices(columns["record"]).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return Part({"record": [records[i] for i in good]}, parsed, [str(i) for i in range(reading.labels)])


@source("tfds")
def read_tfds(data, reading: Reading, seed) -> Part:
    """A prepared tensorflow-datasets dataset, downloaded only when asked."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError("data source tfds needs the tensorflow-datasets package: pip install tensorflow-datasets") from None
    try:
        builder = tfds.builder(data.location, data_dir=data.data_dir)
    except Exception as e:    # DatasetNotFoundError and friends
        raise DataError(f"tfds dataset '{data.location}' not found{' in ' + data.data_dir if data.data_dir else ''}: "
                        f"{first_line(str(e))}") from None
    where = data.data_dir or "tfds's data_dir"
    if not _tfds_prepared(builder):
        if not data.download:
            raise DataError(f"tfds dataset '{data.location}' is not prepared in {where}\n  hint: set data.download: "
                            "true to download it once (needs the network), or prepare it with the tfds CLI")
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise DataError(f"tfds dataset '{data.location}' could not be downloaded: {first_line(str(e))}") from None
    info = builder.info
    if data.split not in info.splits:
        raise DataError(f"tfds dataset '{data.location}' has no split '{data.split}' "
                        f"(it has: {', '.join(info.splits)})")
    feature_name = data.mask_feature if reading.task == "segmentation" else data.label_feature
    for name in (data.image_feature, feature_name):
        if name not in info.features:
            raise DataError(f"tfds dataset '{data.location}' has no feature '{name}' "
                            f"(it has: {', '.join(info.features)})\n  hint: set data.image_feature / "
                            f"data.{'mask' if reading.task == 'segmentation' else 'label'}_feature")
    classes = [str(i) for i in range(reading.labels)]
    label = info.features[data.label_feature] if data.label_feature in info.features else None
    if reading.task == "classification" and hasattr(label, "names"):
        classes = list(label.names)
        reading.classes_must_match(f"tfds dataset '{data.location}'", classes)
    image = info.features[data.image_feature]
    if getattr(image, "shape", None) and image.shape[-1] is not None:
        reading.check_channels(f"tfds dataset '{data.location}'", image.shape[-1])
    total = info.splits[data.split].num_examples
    split = builder.as_dataset(split=data.split, shuffle_files=False)
    split = split.map(lambda example: (example[data.image_feature], example[feature_name]))

    def kept(columns):
        """The split's items at the selected positions (all of them unless split for validation)."""
        import tensorflow as tf
        data, positions = split, columns["position"]
        if len(positions) < total:
            keep = np.zeros(total, bool)
            keep[positions] = True
            keep = tf.constant(keep)
            data = data.enumerate().filter(lambda i, item: tf.gather(keep, i)).map(lambda i, item: item)
        return data
    return Part({"position": np.arange(total)}, kept, classes)


def _tfds_prepared(builder) -> bool:
    try:
        return bool(builder.is_prepared())
    except AttributeError:
        return os.path.exists(os.path.join(builder.data_dir, "dataset_info.json"))
