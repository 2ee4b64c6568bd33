"""Data sources → tf.data pipelines of preprocessed images, for training and validation.

    load_data(spec, output_shape) → Loaded     read and check every source (names bad files)
    Pipeline(loaded, spec, …)                 tf.data: decode → preprocess → cache → shuffle
                                              → batch → augment (AUTOTUNE) → prefetch

Sources (`data.source`): digits (scikit-learn's 8×8 digits, the offline default), shapes
(generated, seeded, with masks), directory (class sub-folders; images/ + masks/ for
segmentation), npz (arrays x and y), tfrecord (an encoded image and a label per record),
tfds (a prepared tensorflow-datasets dataset). Every image goes through
`preprocess.preprocess`, the function export and predict use too.

Bad data is found before training starts, not in the middle of an epoch: files are decoded
once up front (Keras's image_dataset_from_directory would fail only while iterating), and
each failure names the file. With `on_bad: skip` bad items are left out and counted.
TensorFlow is imported inside the functions that need it.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..preprocess import channels_fit, preprocess

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
IMAGE_KINDS = "png/jpg/bmp/gif"      # IMAGE_SUFFIXES as a user names them
SHAPE_CLASSES = ("circle", "square", "triangle")
DIGITS_MAX = 16          # load_digits' pixel values are 0…16
SHUFFLE_SALT = 1_000_003  # epoch e shuffles with seed·SALT + e, so an epoch's order does not depend on resumes
PREPROCESS_BATCH = 256   # arrays are preprocessed this many at a time


class DataError(Exception):
    """The data cannot be used; the message names the file (and how to fix it)."""


@dataclass
class Part:
    """One split (train or validation) before decoding. `kind` says which fields are used:
    arrays (images uint8 [N, h, w, c], labels), files (paths, labels; masks as arrays),
    records (raw tfrecord bytes), tfds (a tf.data.Dataset and the indices kept)."""

    kind: str
    count: int
    images: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    paths: Optional[list] = None
    records: Optional[list] = None
    source: object = None        # records: the Source naming the features; tfds: the dataset
    keep: Optional[np.ndarray] = None   # tfds: which items of the split (bool per item)

    def select(self, indices) -> "Part":
        """The items at `indices` (sorted), for the validation split."""
        indices = np.sort(np.asarray(indices, dtype=np.int64))
        if self.kind == "tfds":
            positions = np.flatnonzero(self.keep) if self.keep is not None else np.arange(self.count)
            keep = np.zeros(len(self.keep) if self.keep is not None else self.count, bool)
            keep[positions[indices]] = True
            return dataclasses.replace(self, count=len(indices), keep=keep)
        pick = (lambda a: None if a is None else a[indices])
        listed = (lambda items: None if items is None else [items[i] for i in indices])
        return dataclasses.replace(self, count=len(indices), images=pick(self.images), labels=pick(self.labels),
                                   paths=listed(self.paths), records=listed(self.records))


@dataclass
class Loaded:
    """What a run trains on: the splits, the class names in label order, the task."""

    train: Part
    validation: Optional[Part]
    classes: list
    task: str                 # classification | segmentation
    outputs: int              # the model's last axis: classes, or 1 for a sigmoid
    label_shape: tuple        # (H, W) of the masks for segmentation, () otherwise
    source: str
    skipped: list = field(default_factory=list)   # (file, reason) pairs left out with on_bad: skip

    def describe(self) -> str:
        val = f" / {self.validation.count:,} validation" if self.validation else ", no validation"
        return (f"{self.source}: {self.train.count:,} training{val} images, {len(self.classes)} classes"
                + (" (per-pixel masks)" if self.task == "segmentation" else ""))


# ── reading sources ───────────────────────────────────────────────────────────────────────

def task_of(spec, output_shape) -> str:
    """classification for a vector output, segmentation for an H×W×K map."""
    from ..errors import Problem, SpecError
    task = spec.data.task
    if task == "auto":
        task = "segmentation" if len(output_shape) == 3 else "classification"
    wanted = 1 if task == "classification" else 3
    if len(output_shape) != wanted:
        shape = "×".join(map(str, output_shape))
        hint = ("end the model with 'flatten' or 'global_avg_pool' and a dense layer" if task == "classification"
                else "end the model with a convolution giving one channel per class")
        raise SpecError([Problem(spec.where.at("data.task"),
                                 f"task {task} needs a model output of {'a vector' if wanted == 1 else 'H×W×classes'}, "
                                 f"but the model outputs {shape}", hint)])
    return task


def load_data(spec, output_shape) -> Loaded:
    """Read `spec.data` (and its validation source), check it against the model's output,
    and split off validation data with `train.seed`."""
    data = spec.data
    task = task_of(spec, output_shape)
    outputs = output_shape[-1]
    label_shape = tuple(output_shape[:2]) if task == "segmentation" else ()
    reader = _Reader(spec, task, outputs, label_shape)
    train, classes = reader.read(data, seed=spec.train.seed)
    validation = None
    if data.validation is not None:
        validation, val_classes = reader.read(data.validation, seed=spec.train.seed + 1)
        if data.classes is None and data.validation.kind == "directory" and val_classes != classes:
            raise DataError(f"{data.validation.location}: validation classes {val_classes} differ from the training "
                            f"classes {classes}")
    elif data.holdout > 0:
        order = np.random.default_rng(spec.train.seed).permutation(train.count)
        held = int(round(train.count * data.holdout))
        if held < 1 or held >= train.count:
            raise DataError(f"{_name(data)}: {train.count} images cannot be split with validation_split "
                            f"{data.holdout}: it leaves {train.count - held} for training and {held} for validation")
        validation, train = train.select(order[:held]), train.select(order[held:])
    if train.count == 0:
        raise DataError(f"{_name(data)}: no training images")
    if data.classes is not None:
        if len(data.classes) != len(classes):
            raise DataError(f"data.classes lists {len(data.classes)} names, but there are {len(classes)} classes")
        classes = list(data.classes)
    return Loaded(train, validation, classes, task, outputs, label_shape, _name(data), reader.skipped)


def _name(source) -> str:
    return source.kind if source.location is None else f"{source.kind} {source.location}"


class _Reader:
    def __init__(self, spec, task, outputs, label_shape):
        self.spec, self.task, self.outputs, self.label_shape = spec, task, outputs, label_shape
        self.input_shape = spec.input
        self.skip = spec.data.on_bad == "skip"
        self.skipped: list = []
        self.labels = 2 if outputs == 1 else outputs      # a sigmoid output is two classes

    def read(self, source, seed) -> tuple[Part, list]:
        return getattr(self, f"_{source.kind}")(source, seed)

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

    # digits: scikit-learn's bundled 8×8 scans, 0…16 → 0…255
    def _digits(self, source, seed):
        if self.task != "classification":
            raise DataError("digits has class labels, not masks: segmentation needs data.source shapes, a directory "
                            "with images/ and masks/, or an npz with masks")
        from sklearn.datasets import load_digits
        digits = load_digits()
        images = np.round(digits.images * (255.0 / DIGITS_MAX)).astype(np.uint8)[..., None]
        classes = [str(i) for i in range(10)]
        self.classes_must_match("digits", classes)
        return Part("arrays", len(images), images, digits.target.astype(np.int32)), classes

    # shapes: generated circles, squares, triangles with masks
    def _shapes(self, source, seed):
        height, width, channels = self.input_shape
        images, labels, masks = generate_shapes(source.samples, height, width, channels, seed)
        if self.task == "classification":
            classes = list(SHAPE_CLASSES)
            self.classes_must_match("shapes", classes)
            return Part("arrays", len(images), images, labels), classes
        if self.labels == 2:                     # foreground / background
            return Part("arrays", len(images), images, (masks > 0).astype(np.uint8)), ["background", "shape"]
        classes = ["background", *SHAPE_CLASSES]
        self.classes_must_match("shapes masks", classes)
        return Part("arrays", len(images), images, masks), classes

    # npz: arrays x [N, h, w(, c)] and y [N] or masks [N, h, w]
    def _npz(self, source, seed):
        path = Path(source.location)
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
        self.check_channels(f"{path}: x", x.shape[-1])
        x = _as_uint8(x, path)
        if len(y) != len(x):
            raise DataError(f"{path}: x has {len(x)} images but y has {len(y)} labels")
        if self.task == "classification":
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
        keep = self.labels_in_range(y, path)
        x, y = x[keep], y[keep]
        if stored_classes is not None:
            self.classes_must_match(str(path), stored_classes)
            classes = stored_classes
        else:
            classes = [str(i) for i in range(self.labels)]
        return Part("arrays", len(x), x, y.astype(np.int32)), classes

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

    # directory: class sub-folders, or images/ + masks/ for segmentation
    def _directory(self, source, seed):
        root = Path(source.location)
        if not root.exists():
            raise DataError(f"{root}: no such folder")
        if not root.is_dir():
            raise DataError(f"{root}: is not a folder")
        if self.task == "segmentation":
            return self._directory_masks(root)
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise DataError(f"{root}: has no class sub-folders\n  hint: put each class's images in its own folder: "
                            f"{root}/cat/1.png, {root}/dog/1.png")
        classes = [p.name for p in folders]
        self.classes_must_match(str(root), classes)
        paths, labels = [], []
        for label, folder in enumerate(folders):
            files = _image_files(folder)
            if not files:
                self.bad(folder, f"class folder '{folder.name}' has no images ({', '.join(IMAGE_SUFFIXES)})",
                         "add images, or remove the folder")
            paths += files
            labels += [label] * len(files)
        good = self.scan_images(paths)
        paths = [paths[i] for i in good]
        return Part("files", len(paths), labels=np.asarray(labels, np.int32)[good], paths=paths), classes

    def _directory_masks(self, root):
        images_dir, masks_dir = root / "images", root / "masks"
        for folder in (images_dir, masks_dir):
            if not folder.is_dir():
                raise DataError(f"{folder}: no such folder\n  hint: for segmentation put images in {images_dir} and "
                                f"masks (PNG, pixel value = class number) with the same names in {masks_dir}")
        files = _image_files(images_dir)
        if not files:
            raise DataError(f"{images_dir}: has no images ({', '.join(IMAGE_SUFFIXES)})")
        masks_by_stem = {}
        for mask in _image_files(masks_dir):
            masks_by_stem.setdefault(Path(mask).stem, mask)
        paths, mask_paths = [], []
        for file in files:
            mask = masks_by_stem.get(Path(file).stem)
            if mask is None:
                self.bad(file, f"has no mask in {masks_dir} (looked for {Path(file).stem}.png)")
                continue
            paths.append(file)
            mask_paths.append(mask)
        good = self.scan_images(paths)
        paths, mask_paths = [paths[i] for i in good], [mask_paths[i] for i in good]
        masks, keep = [], []
        for i, mask_path in enumerate(mask_paths):
            mask = self.read_mask(mask_path)
            if mask is not None:
                masks.append(mask)
                keep.append(i)
        paths = [paths[i] for i in keep]
        if not paths:
            raise DataError(f"{root}: no usable image and mask pairs")
        return (Part("files", len(paths), labels=np.stack(masks), paths=paths),
                ["background"] + [f"class_{i}" for i in range(1, self.labels)])

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

    def scan_images(self, paths) -> list:
        """Decode every file once, in parallel, with the decoder the pipeline uses; report the
        ones that fail or whose channels do not fit. Returns the indices of the good ones."""
        if not paths:
            return []
        import tensorflow as tf
        results, errors = _try_all(paths, lambda p: tf.shape(decode_image(p)))
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

    # tfrecord: records with an encoded image and a label (or an encoded mask)
    def _tfrecord(self, source, seed):
        import tensorflow as tf
        pattern = source.location
        if os.path.isdir(pattern):
            files = sorted(f for f in glob.glob(os.path.join(pattern, "*")) if f.lower().endswith((".tfrecord", ".tfrecords", ".tfrec")))
        else:
            files = sorted(glob.glob(pattern))
        if not files:
            raise DataError(f"{pattern}: no such file" + (" (no .tfrecord files in the folder)" if os.path.isdir(pattern) else ""))
        parse = record_parser(source, self.task)
        records, where = [], []
        for file in files:
            count = 0
            try:
                for raw in tf.data.TFRecordDataset(file):
                    records.append(raw.numpy())
                    where.append(f"{file}: record {count}")
                    count += 1
            except tf.errors.OpError as e:
                self.bad(file, f"is damaged after {count} records: {op_error_text(e)}")
        if not records:
            raise DataError(f"{pattern}: holds no records")

        def check(raw):
            image, label = parse(raw)
            return tf.shape(image), tf.reduce_min(label), tf.reduce_max(label)
        results, errors = _try_all(records, check)
        good = []
        for i, place in enumerate(where):
            if i in errors:
                self.bad(place, f"cannot be read: {errors[i]}",
                         f"records need features '{source.image_feature}' (encoded image bytes) and "
                         f"'{source.mask_feature if self.task == 'segmentation' else source.label_feature}'"
                         f"{' (encoded PNG)' if self.task == 'segmentation' else ' (int64)'}; set data.image_feature / "
                         f"data.{'mask' if self.task == 'segmentation' else 'label'}_feature to your names")
                continue
            shape, low, high = results[i]
            if not channels_fit(int(shape[-1]), self.input_shape[2]):
                self.bad(place, f"image has {int(shape[-1])} channels; the spec's input has {self.input_shape[2]}")
                continue
            if low < 0 or high >= self.labels:
                value = low if low < 0 else high
                self.bad(place, f"{'label' if self.task == 'classification' else 'mask value'} {value} is not a class "
                                f"of the model's {self.outputs} outputs (0…{self.labels - 1})")
                continue
            good.append(i)
        records = [records[i] for i in good]
        return Part("records", len(records), records=records, source=source), [str(i) for i in range(self.labels)]

    # tfds: a prepared tensorflow-datasets dataset, downloaded only when asked
    def _tfds(self, source, seed):
        try:
            import tensorflow_datasets as tfds
        except ImportError:
            raise DataError("data source tfds needs the tensorflow-datasets package: pip install tensorflow-datasets") from None
        try:
            builder = tfds.builder(source.location, data_dir=source.data_dir)
        except Exception as e:    # DatasetNotFoundError and friends
            raise DataError(f"tfds dataset '{source.location}' not found{' in ' + source.data_dir if source.data_dir else ''}: "
                            f"{_first_line(str(e))}") from None
        where = source.data_dir or "tfds's data_dir"
        if not _tfds_prepared(builder):
            if not source.download:
                raise DataError(f"tfds dataset '{source.location}' is not prepared in {where}\n  hint: set data.download: "
                                "true to download it once (needs the network), or prepare it with the tfds CLI")
            try:
                builder.download_and_prepare()
            except Exception as e:
                raise DataError(f"tfds dataset '{source.location}' could not be downloaded: {_first_line(str(e))}") from None
        info = builder.info
        if source.split not in info.splits:
            raise DataError(f"tfds dataset '{source.location}' has no split '{source.split}' "
                            f"(it has: {', '.join(info.splits)})")
        feature_name = source.mask_feature if self.task == "segmentation" else source.label_feature
        for name in (source.image_feature, feature_name):
            if name not in info.features:
                raise DataError(f"tfds dataset '{source.location}' has no feature '{name}' "
                                f"(it has: {', '.join(info.features)})\n  hint: set data.image_feature / "
                                f"data.{'mask' if self.task == 'segmentation' else 'label'}_feature")
        classes = [str(i) for i in range(self.labels)]
        label = info.features[source.label_feature] if source.label_feature in info.features else None
        if self.task == "classification" and hasattr(label, "names"):
            classes = list(label.names)
            self.classes_must_match(f"tfds dataset '{source.location}'", classes)
        image = info.features[source.image_feature]
        if getattr(image, "shape", None) and image.shape[-1] is not None:
            self.check_channels(f"tfds dataset '{source.location}'", image.shape[-1])
        dataset = builder.as_dataset(split=source.split, shuffle_files=False)
        dataset = dataset.map(lambda example: (example[source.image_feature], example[feature_name]))
        return Part("tfds", info.splits[source.split].num_examples, source=dataset), classes


def _tfds_prepared(builder) -> bool:
    try:
        return bool(builder.is_prepared())
    except AttributeError:
        return os.path.exists(os.path.join(builder.data_dir, "dataset_info.json"))


def _image_files(folder) -> list:
    return sorted(str(p) for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


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


def _first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else "unknown error"


def op_error_text(error) -> str:
    """A TensorFlow op error (or its message) as a user reads it: the first line, without
    the '{{function_node __wrapped__DecodeImage_device_/job:localhost/…}}' prefix and the
    ' [Op:DecodeImage] name:' suffix that eager TensorFlow adds.

    >>> op_error_text("{{function_node __wrapped__X}} Invalid PNG. [Op:DecodeImage] name: ")
    'Invalid PNG.'
    """
    text = _first_line(getattr(error, "message", None) or str(error))
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", re.sub(r"^\{\{[^}]*\}\}\s*", "", text))
    return text or "unknown error"


def unreadable_image(error) -> str:
    """The one wording for an image file that cannot be decoded, said by training's data scan
    and by predict alike (each puts the file's name first): 'not a readable png/jpg/bmp/gif
    image: ' and TensorFlow's reason."""
    return f"not a readable {IMAGE_KINDS} image: {op_error_text(error)}"


def _try_all(items, fn):
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


# ── shapes: generated, seeded images of circles, squares and triangles ────────────────────

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


# ── the tf.data pipeline ──────────────────────────────────────────────────────────────────

class Pipeline:
    """tf.data for one run: decode → preprocess → cache, then per epoch shuffle (seeded by
    the epoch, so a resumed run sees the same order) → batch → augment (parallel, AUTOTUNE) →
    prefetch. Augmentation (`augment(images, labels, seed)`) runs on training batches only.

    `dense_labels` turns class numbers into one-hot vectors (for label smoothing, mixup,
    cutmix)."""

    def __init__(self, loaded: Loaded, input_shape, batch_size, seed, augment=None, dense_labels=False, cache=True):
        import tensorflow as tf
        self.tf = tf
        self.loaded, self.input_shape, self.batch_size, self.seed = loaded, tuple(input_shape), batch_size, seed
        self.augment, self.dense_labels = augment, dense_labels
        self.train_base = self._base(loaded.train, cache)
        self.validation_base = self._base(loaded.validation, cache) if loaded.validation else None
        self.steps_per_epoch = -(-loaded.train.count // batch_size)

    def _base(self, part: Part, cache):
        """(image float32 [H, W, C] in 0…1, label) for each item, cached after decoding."""
        tf = self.tf
        shape, label_shape, AUTOTUNE = self.input_shape, self.loaded.label_shape, tf.data.AUTOTUNE
        segmentation = self.loaded.task == "segmentation"

        def one(image):
            return preprocess(image[None], shape)[0]

        def mask(labels):
            if not segmentation:
                return tf.cast(labels, tf.int32)
            resized = tf.image.resize(tf.cast(labels, tf.uint8)[..., None], label_shape, method="nearest")
            return tf.cast(resized[..., 0], tf.int32)

        if part.kind == "arrays":
            data = tf.data.Dataset.from_tensor_slices((part.images, part.labels)).batch(PREPROCESS_BATCH)
            data = data.map(lambda x, y: (preprocess(x, shape), mask(y)), num_parallel_calls=AUTOTUNE).unbatch()
        elif part.kind == "files":
            data = tf.data.Dataset.from_tensor_slices((part.paths, part.labels))
            data = data.map(lambda p, y: (one(decode_image(p)), mask(y)), num_parallel_calls=AUTOTUNE)
        elif part.kind == "records":
            parse = record_parser(part.source, self.loaded.task)
            data = tf.data.Dataset.from_tensor_slices(part.records)
            data = data.map(lambda raw: (lambda image, y: (one(image), mask(y)))(*parse(raw)), num_parallel_calls=AUTOTUNE)
        else:   # tfds
            data = part.source
            if part.keep is not None:
                kept = tf.constant(part.keep)
                data = data.enumerate().filter(lambda i, item: tf.gather(kept, i)).map(lambda i, item: item)
            data = data.map(lambda image, y: (one(image), mask(y)), num_parallel_calls=AUTOTUNE)
        # a known length lets Keras size its progress bar and evaluation without a warning
        data = data.apply(tf.data.experimental.assert_cardinality(part.count))
        return data.cache() if cache else data

    def _labels(self, images, labels):
        tf = self.tf
        if self.loaded.outputs == 1:                       # a sigmoid: float 0/1, with a channel axis
            labels = tf.cast(labels, tf.float32)[..., None]
        elif self.dense_labels:
            labels = tf.one_hot(labels, self.loaded.outputs)
        return images, labels

    def train_epoch(self, epoch, shard=None):
        """One epoch's batches; `epoch` may be a tensor (inside flat_map). `shard` =
        (input pipelines, this one's index, batch per replica) gives each worker of a
        multi-worker run an equal part of the same shuffled order, in whole batches."""
        tf = self.tf
        salt = tf.cast(epoch, tf.int64)
        data = self.train_base
        data = data.shuffle(self.loaded.train.count, seed=tf.constant(self.seed * SHUFFLE_SALT, tf.int64) + salt,
                            reshuffle_each_iteration=False)
        if shard:
            pipelines, index, batch = shard
            data = data.take((self.loaded.train.count // pipelines) * pipelines).shard(pipelines, index)
            data = data.batch(batch, drop_remainder=True)
        else:
            data = data.batch(self.batch_size)
        data = data.map(self._labels, num_parallel_calls=tf.data.AUTOTUNE)
        if self.augment is not None:
            augment, seed = self.augment, self.seed

            def step(i, batch):
                images, labels = batch
                return augment(images, labels, tf.stack([tf.constant(seed, tf.int64) * SHUFFLE_SALT + salt, i]))
            data = data.enumerate().map(step, num_parallel_calls=tf.data.AUTOTUNE)
        return data

    def train_epochs(self, start, end):
        """Epochs start…end−1 back to back, for Keras's fit with steps_per_epoch."""
        tf = self.tf
        return tf.data.Dataset.range(start, end).flat_map(self.train_epoch).prefetch(tf.data.AUTOTUNE)

    def validation(self):
        if self.validation_base is None:
            return None
        tf = self.tf
        return self.validation_base.batch(self.batch_size).map(self._labels).prefetch(tf.data.AUTOTUNE)
