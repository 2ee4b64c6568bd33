"""The data sources, one function each, found by `data.source`'s kind in `SOURCES`:

    digits     scikit-learn's bundled 8×8 scans (the offline default)
    shapes     generated, seeded circles, squares and triangles, with masks
    npz        arrays x and y (or masks) in one file
    directory  class sub-folders; images/ + masks/ for segmentation
    tfrecord   an encoded image and a label (or an encoded mask) per record
    tfds       a prepared tensorflow-datasets dataset, downloaded only when asked

Each checks what it can before training starts and returns a `Part`. Arrays (digits,
shapes, npz) are checked whole and stay in memory. Files are listed, never all decoded:
each image file's header is read (parsed directly, or by PIL's Image.open: no pixels), so an
unreadable file or one whose channels do not fit is named (or, with `on_bad: skip`, left
out and counted); the pixels are decoded inside tf.data while training, where a file whose
header is fine but whose data is corrupt is skipped and counted (pipeline.py).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..check.data import (IMAGE_SUFFIXES, PACK_INDEX, DataError, class_count_problem, class_folders,
                          empty_class_folder, image_files, tfrecord_files)
from ..errors import first_line
from ..preprocess import channels_fit
from .images import (SHAPE_CLASSES, decode_image, generate_shapes, image_header, op_error_text, record_parser,
                     resize_masks)

__all__ = ["DataError", "Part", "Reading", "SOURCES"]

DIGITS_MAX = 16          # load_digits' pixel values are 0…16
SHARDS_READ = 4          # record files read at once, interleaved record by record (more mixing, parallel reads)


@dataclass(frozen=True)
class Part:
    """One split (train or validation) before decoding. Item i is row i of `columns`
    (equal-length arrays by name: image and label, path and label, or position in a
    tfrecord or tfds source). `classes`: the class names in label order.

    How rows become (uint8 image [h, w, c], label or mask), inside tf.data: `decode`, from
    a row (files, read in any order) or from an encoded item of `stream` (columns, epoch
    seed → a dataset of records, read in their stored order); or neither (arrays: the rows
    already hold the image and label). Shuffling happens before decoding, so what it holds
    is file names or encoded records, never decoded images."""

    columns: dict
    classes: list
    decode: Optional[Callable] = None
    stream: Optional[Callable] = None
    files: int = 0                       # record files (shards) a stream reads
    share: Optional[Callable] = None     # (worker, workers) → the Part of this worker's own files

    @property
    def count(self) -> int:
        return len(next(iter(self.columns.values())))

    @property
    def in_memory(self) -> bool:
        return self.decode is None and self.stream is None

    def dataset(self, order_seed=None, shuffle_buffer=10_000, tables=None):
        """tf.data of (image, label). `order_seed` (an int64 scalar, a tensor inside flat_map)
        shuffles before decoding: rows (a file list) by a whole permutation, records in their
        stored order through a buffer of `shuffle_buffer` encoded records. `tables`: the
        columns as variables (`Part.tables`), for datasets built again each epoch."""
        import tensorflow as tf
        plain = tf.autograph.experimental.do_not_convert   # plain TensorFlow ops: AutoGraph would only cost time
        if self.stream is not None:
            records = self.stream(self.columns, order_seed)
            if order_seed is not None:
                records = records.shuffle(shuffle_buffer, seed=order_seed, reshuffle_each_iteration=False)
            return records.map(plain(self.decode), num_parallel_calls=tf.data.AUTOTUNE)
        if self.decode is None:
            return tf.data.Dataset.from_tensor_slices(self.columns).map(plain(lambda row: (row["image"], row["label"])))
        rows = permuted_rows(tables or self.tables(), self.count, order_seed)
        return rows.map(plain(self.decode), num_parallel_calls=tf.data.AUTOTUNE)

    def tables(self) -> dict:
        """The columns as TensorFlow variables, which a dataset reads by reference. As
        constants, each dataset built inside flat_map (one per epoch) carried and serialised
        its own copy of the file list: 3 s and 110 MiB more at 40,000 files, measured."""
        import tensorflow as tf
        return {name: tf.Variable(column, trainable=False, name=name) for name, column in self.columns.items()}

    def worker_part(self, worker: int, workers: int) -> "Part":
        """This worker's own shards, for multi-worker runs (FILE sharding); needs files >= workers."""
        return self.share(worker, workers, self.columns)

    def select(self, indices) -> "Part":
        """The items at `indices`, in stored order (for the validation split)."""
        indices = np.sort(np.asarray(indices, dtype=np.int64))
        return replace(self, columns={name: column[indices] if isinstance(column, np.ndarray)
                                      else [column[i] for i in indices] for name, column in self.columns.items()})


def permuted_rows(tables, count, order_seed):
    """The rows of `tables` (a file list's columns, tensors or variables), all of them, in a
    permutation seeded by `order_seed` (stored order without one); a row is gathered by its
    index, so the order costs 8 bytes a file (a shuffle buffer over the rows themselves
    holds each file's name and label as tensors, 1–3 KB a file)."""
    import tensorflow as tf
    order = tf.range(count, dtype=tf.int64)
    if order_seed is not None:
        order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.cast(order_seed, tf.int64), 0]))
    return tf.data.Dataset.from_tensor_slices(order).map(tf.autograph.experimental.do_not_convert(
        lambda i: {name: tf.gather(table, i) for name, table in tables.items()}))


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
        problem = class_count_problem(what, names, self.outputs)
        if problem:
            raise DataError(problem)

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

    def scan_images(self, paths) -> tuple:
        """Read every file's header (format, channels; no pixels); report the ones that cannot
        be read or whose channels do not fit. Returns the indices of the good ones and the set
        of their channel counts. One thread: the headers are parsed directly
        (images.image_header), 40,000 files in 0.4 s from the page cache, where 4 or 16
        threads took 1.2–1.5 s (the GIL) and 70 MiB more memory."""
        good, seen = [], set()
        for i, path in enumerate(paths):
            channels, reason = image_header(path)
            if reason is not None:
                self.bad(path, reason, "replace or delete the file, or set data.on_bad: skip to leave such files out")
            elif not channels_fit(channels, self.input_shape[2]):
                self.bad(path, f"has {channels} channels; the spec's input has {self.input_shape[2]} "
                               "(1, 3 or 4 channels convert to 1 or 3)")
            else:
                good.append(i)
                seen.add(channels)
        return good, seen

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
    return Part({"image": images, "label": digits.target.astype(np.int32)}, classes)


@source("shapes")
def read_shapes(data, reading: Reading, seed) -> Part:
    """Generated circles, squares and triangles, with masks."""
    height, width, channels = reading.input_shape
    images, labels, masks = generate_shapes(data.samples, height, width, channels, seed)
    if reading.task == "classification":
        classes = list(SHAPE_CLASSES)
        reading.classes_must_match("shapes", classes)
        return Part({"image": images, "label": labels}, classes)
    if reading.labels == 2:                     # foreground / background
        return Part({"image": images, "label": (masks > 0).astype(np.uint8)}, ["background", "shape"])
    classes = ["background", *SHAPE_CLASSES]
    reading.classes_must_match("shapes masks", classes)
    return Part({"image": images, "label": masks}, classes)


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
    return Part({"image": x, "label": y.astype(np.int32)}, classes)


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


def _path_column(paths) -> np.ndarray:
    """File names as bytes (1 byte a character; numpy's str takes 4): 1.28 M ImageNet paths
    are ~100 MB, the one part of a directory source that stays in memory."""
    return np.asarray([os.fsencode(p) for p in paths], dtype=bytes)


def file_decoder(channels: set):
    """row → (the file decoded, its label or mask), inside tf.data. When every file has the
    same 1 or 3 channels (their headers say), they are decoded with that count fixed: the
    same pixels, and a known shape lets `preprocess` skip choosing a conversion per image
    (~20% more images/second, measured); mixed files decode as stored (channels=0)."""
    fixed = next(iter(channels)) if len(channels) == 1 and channels <= {1, 3} else 0

    def decode(row):
        return decode_image(row["path"], fixed), row["label"]
    return decode


@source("directory")
def read_directory(data, reading: Reading, seed) -> Part:
    """Class sub-folders, or images/ + masks/ for segmentation."""
    root = Path(data.location)
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: is not a folder")
    if (root / PACK_INDEX).is_file():
        return read_packed(data, root, reading)
    if reading.task == "segmentation":
        return _image_and_mask_folders(root, reading)
    folders = class_folders(root)
    if not folders:
        raise DataError(f"{root}: has no class sub-folders\n  hint: put each class's images in its own folder: "
                        f"{root}/cat/1.png, {root}/dog/1.png")
    classes = [p.name for p in folders]
    reading.classes_must_match(str(root), classes)
    paths, labels = [], []
    for label, folder in enumerate(folders):
        files = image_files(folder)
        if not files and not reading.skip:
            raise DataError(empty_class_folder(folder))
        if not files:
            reading.skipped.append((str(folder), f"class folder '{folder.name}' has no images"))
        paths += files
        labels += [label] * len(files)
    good, channels = reading.scan_images(paths)
    return Part({"path": _path_column([paths[i] for i in good]), "label": np.asarray(labels, np.int32)[good]},
                classes, decode=file_decoder(channels))


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
    good, channels = reading.scan_images(paths)
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
    return Part({"path": _path_column(paths), "label": np.stack(masks)},
                ["background"] + [f"class_{i}" for i in range(1, reading.labels)], decode=file_decoder(channels))


@source("tfrecord")
def read_tfrecord(data, reading: Reading, seed) -> Part:
    """Records with an encoded image and a label (or an encoded mask). Each record is read
    once here to check its features, its image header and its label (nothing is decoded
    and nothing kept); training streams the files again in their stored order."""
    import tensorflow as tf
    pattern = data.location
    if os.path.isfile(os.path.join(pattern, PACK_INDEX)):
        return read_packed(data, Path(pattern), reading)
    files = tfrecord_files(pattern)
    if not files:
        raise DataError(f"{pattern}: no such file" + (" (no .tfrecord files in the folder)" if os.path.isdir(pattern) else ""))
    label_key = data.mask_feature if reading.task == "segmentation" else data.label_feature
    hint = (f"records need features '{data.image_feature}' (encoded image bytes) and '{label_key}'"
            f"{' (encoded PNG)' if reading.task == 'segmentation' else ' (int64)'}; set data.image_feature / "
            f"data.{'mask' if reading.task == 'segmentation' else 'label'}_feature to your names")
    counts, keep = [], []
    for file in files:
        count = 0
        try:
            for raw in tf.data.TFRecordDataset(file).as_numpy_iterator():
                reason = _record_problem(raw, data, reading, label_key)
                if reason is not None:
                    reading.bad(f"{file}: record {count}", reason, hint if reason.startswith("cannot be read") else "")
                keep.append(reason is None)
                count += 1
        except tf.errors.OpError as e:
            reading.bad(file, f"is damaged after {count} records: {op_error_text(e)}")
        counts.append(count)
    if not keep:
        raise DataError(f"{pattern}: holds no records")
    return _records_part(files, counts, np.flatnonzero(keep), record_parser(data, reading.task),
                         [str(i) for i in range(reading.labels)])


def _record_problem(raw, data, reading, label_key):
    """What is wrong with one serialised tf.train.Example, or None (image header only)."""
    import tensorflow as tf
    from PIL import Image
    try:
        features = tf.train.Example.FromString(raw).features.feature
        image = features[data.image_feature].bytes_list.value[0]
        if reading.task == "segmentation":
            with Image.open(io.BytesIO(features[label_key].bytes_list.value[0])) as mask_file:
                values = np.asarray(mask_file)
            low, high = int(values.min()), int(values.max())
        else:
            low = high = int(features[label_key].int64_list.value[0])
    except Exception as e:          # a missing feature (IndexError, KeyError), a damaged mask, bad bytes
        return f"cannot be read: {first_line(str(e)) or type(e).__name__}"
    channels, reason = image_header(io.BytesIO(image))
    if reason is not None:
        return f"cannot be read: {reason}"
    if not channels_fit(channels, reading.input_shape[2]):
        return f"image has {channels} channels; the spec's input has {reading.input_shape[2]}"
    if low < 0 or high >= reading.labels:
        value = low if low < 0 else high
        return (f"{'label' if reading.task == 'classification' else 'mask value'} {value} is not a "
                f"class of the model's {reading.outputs} outputs (0…{reading.labels - 1})")
    return None


def _records_part(files, counts, positions, parse, classes) -> Part:
    """The records at `positions` (numbered across `files`, which hold `counts` records each),
    streamed in stored order; a file's damaged tail (past its count) is never read."""
    total = int(sum(counts))

    def stream(columns, order_seed=None):
        """The selected records, encoded. Shuffling (order_seed) reads all the files in an
        order seeded by the epoch, SHARDS_READ at a time, record by record; a selection (a
        validation split) keeps the stored order, where the positions are counted."""
        import tensorflow as tf
        names, sizes = tf.constant(list(files)), tf.constant(np.asarray(counts, np.int64))
        if order_seed is not None and len(columns["record"]) == total and len(files) > 1:
            order = tf.random.experimental.stateless_shuffle(tf.range(len(files), dtype=tf.int64),
                                                             seed=tf.stack([tf.cast(order_seed, tf.int64), 1]))
            return tf.data.Dataset.from_tensor_slices(order).map(lambda k: (tf.gather(names, k), tf.gather(sizes, k))) \
                .interleave(lambda file, count: tf.data.TFRecordDataset(file).take(count), cycle_length=SHARDS_READ,
                            block_length=1, num_parallel_calls=SHARDS_READ, deterministic=True)
        shards = tf.data.Dataset.from_tensor_slices((names, sizes))
        records = shards.flat_map(lambda file, count: tf.data.TFRecordDataset(file).take(count))
        return _selected(records, columns["record"], total)

    def share(worker, workers, columns):
        """Files worker, worker + workers, … and the selected records in them, renumbered."""
        starts = np.concatenate([[0], np.cumsum(counts)])
        mine = list(range(worker, len(files), workers))
        local, offset = [], 0
        for f in mine:
            inside = columns["record"][(columns["record"] >= starts[f]) & (columns["record"] < starts[f + 1])]
            local.append(inside - starts[f] + offset)
            offset += counts[f]
        return _records_part([files[f] for f in mine], [counts[f] for f in mine],
                             np.concatenate(local) if local else np.zeros(0, np.int64), parse, classes)
    return Part({"record": np.asarray(positions, np.int64)}, classes, decode=parse, stream=stream, files=len(files),
                share=share)


def _selected(dataset, positions, total):
    """The items of `dataset` (of `total` items) at `positions`: all of them, or a filter."""
    import tensorflow as tf
    if len(positions) == total:
        return dataset
    keep = np.zeros(total, bool)
    keep[positions] = True
    keep = tf.constant(keep)

    def wanted(i, item):
        return tf.gather(keep, i)

    def item_only(i, item):
        return item
    return dataset.enumerate().filter(wanted).map(item_only)


def read_packed(data, root, reading: Reading) -> Part:
    """A folder `cnnbuild data pack` wrote: shards of checked records and index.json (classes,
    counts, image size, the records in each shard); nothing is read up front but the index."""
    from .pack import read_index
    index = read_index(root)
    if reading.task != index["task"]:
        raise DataError(f"{root}: was packed for {index['task']}, but the model does {reading.task}")
    reading.classes_must_match(str(root), index["classes"])
    reading.check_channels(root, index["channels"])
    files = [str(root / shard["file"]) for shard in index["shards"]]
    counts = [shard["count"] for shard in index["shards"]]
    # packs list their images' channel counts: one count (1 or 3) decodes with it fixed (see file_decoder)
    counted = index.get("channel_counts", [])
    fixed = counted[0] if len(counted) == 1 and counted[0] in (1, 3) else 0
    return _records_part(files, counts, np.arange(sum(counts)), record_parser(data, reading.task, fixed),
                         index["classes"])


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
    # the images stay encoded until after the shuffle (tfds would decode them as it reads)
    encoded = isinstance(image, tfds.features.Image)
    decoders = {data.image_feature: tfds.decode.SkipDecoding()} if encoded else None
    split = builder.as_dataset(split=data.split, shuffle_files=False, decoders=decoders)
    split = split.map(lambda example: (example[data.image_feature], example[feature_name]))

    def kept(columns, order_seed=None):
        """The split's items at the selected positions (all of them unless split for validation)."""
        return _selected(split, columns["position"], total)

    def decode(item, label):
        import tensorflow as tf
        if not encoded:
            return item, label
        return tf.io.decode_image(item, channels=0, expand_animations=False, dtype=tf.uint8), label
    return Part({"position": np.arange(total)}, classes, decode=decode, stream=kept)


def _tfds_prepared(builder) -> bool:
    try:
        return bool(builder.is_prepared())
    except AttributeError:
        return os.path.exists(os.path.join(builder.data_dir, "dataset_info.json"))
