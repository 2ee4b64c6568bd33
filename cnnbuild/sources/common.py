"""What every data source shares: the kind's record (`SourceKind`), the error, a split
before decoding (`Part`), what a reader checks against (`Reading`), and the file-system facts
several kinds ask (image files, class folders, the pack index).

Nothing here imports TensorFlow or numpy at module level: the spec parser reads the kinds'
rules, and `cnnbuild check` starts without either.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import field, replace
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..errors import Failure, Invalid
from ..records import record
from ..preprocess import channels_fit
from .images import image_info, resize_masks

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
PACK_INDEX = "index.json"                              # what `cnnbuild data pack` writes beside its shards


class DataError(Failure):
    """The data cannot be used; the message names the file (and how to fix it)."""


# ── one kind of source ────────────────────────────────────────────────────────────────────

@record(frozen=True)
class Against:
    """What a source's static problems are found against: the model's task and its last
    axis (`outputs`; None when the labels are not the model's outputs, as a GAN's
    discriminator's), `on_bad: skip`, and `files_only` (only what names files: a spec checked
    for its model alone keeps digits). `folder`: where relative paths are read from (None:
    as written)."""

    task: str = "classification"
    outputs: Optional[int] = None
    skip: bool = False
    files_only: bool = False
    folder: Optional[str] = None


def no_problems(source, against: Against) -> list:
    return []


def unknown_classes(source, folder=None):
    return None


def as_written(source, written: Optional[str]) -> Optional[str]:
    """The location `source:` gives (none for a built-in kind)."""
    return written


def written_or_path(source, written: Optional[str]) -> Optional[str]:
    """The location `source:` gives, else `path:`."""
    return written if written is not None else source.path


@record(frozen=True)
class Packing:
    """What a kind's packer hands `cnnbuild data pack`: the class names, the image count, and
    either `items` (a call per image → (encoded bytes, label, channels), read in any order:
    pack writes them in a seeded permutation) or `stream` (the same triples in stored order,
    read once: pack sends each to a random shard); `skipped`: (file, reason) left out."""

    classes: list
    total: int
    items: Optional[list] = None
    stream: Optional[Iterator] = None
    skipped: list = field(default_factory=list)


@record(frozen=True)
class SourceKind:
    """Everything about one kind of data source, registered by name in `sources.SOURCES`.

    Attributes:
      name: what `source:` says (`digits`, `directory`, …).
      example: a `source:` value of this kind, shown in hints.
      read: (section, Reading, seed) → Part, the tf.data reader (TensorFlow imported inside).
      classes: (section, folder) → the class names known without decoding data, or None.
      problems: (section, Against) → messages about the files, found without TensorFlow.
      takes_path: whether `path:` applies (the file or folder it reads).
      where: (section, location written in `source:`) → what it reads (a path, a tfds name).
      names: (source text, lower-cased) → whether the text names this kind's files (`x.npz`).
      prefix: a `source:` prefix naming this kind, the location after it (`tfds:`).
      rules: (section) → None; raises Invalid for a section this kind cannot read.
      limits: (section, input shape) → [(key, message, hint)], what the spec parser reports.
      pack: (location, size, data_dir, split) → Packing, for `cnnbuild data pack`; None: cannot be packed.
      origin: (section, folder, class names) → what says how many classes there are, for a
        message (default: "the NAME data has N").
      labels_from_folders: its classes are the names of class folders (compared by name).
    """

    name: str
    example: str
    read: Callable
    classes: Callable = unknown_classes
    problems: Callable = no_problems
    takes_path: bool = False
    where: Callable = as_written
    names: Optional[Callable] = None
    prefix: Optional[str] = None
    rules: Optional[Callable] = None
    limits: Optional[Callable] = None
    pack: Optional[Callable] = None
    origin: Optional[Callable] = None
    labels_from_folders: bool = False


# ── file-system facts ─────────────────────────────────────────────────────────────────────

def resolved(location: str, folder: Optional[str] = None) -> str:
    """`location` read from `folder` (as written when None; `~` expanded then).

    >>> resolved("data/flowers", "/specs")
    '/specs/data/flowers'
    >>> resolved("/data/flowers", "/specs"), resolved("data", None)
    ('/data/flowers', 'data')
    """
    return os.path.join(folder, os.path.expanduser(location)) if folder else location


def image_files(folder) -> list:
    """The image files directly in `folder` (by suffix, hidden files left out), sorted."""
    return image_entries(folder)[0]


def image_entries(folder) -> tuple:
    """(the regular image files directly in `folder`, [(entry, why it is not read)] for the
    entries named as images that are no regular file: a FIFO would block training forever, a
    device would stream without end, a dangling link or a loop of links cannot be opened).
    Links to regular files are read: datasets are often linked together."""
    files, strays = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            reason = not_regular(entry.path)
            if reason is None:
                files.append(entry.path)
            else:
                strays.append((entry.path, reason))
    return sorted(files), sorted(strays)


def not_regular(path) -> Optional[str]:
    """Why `path` cannot be read as a data file (following links), or None when it is a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a loop of symbolic links; nothing can be read from it"
        if e.errno == errno.ENAMETOOLONG:
            return too_long(path)
        if e.errno == errno.ENOENT and os.path.islink(path):
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return "no such file" if e.errno == errno.ENOENT else f"cannot be read ({e.strerror})"
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
            "not a regular file")
    return f"is {kind}, not a regular file; data is read from regular files only (a pipe or device could block " \
           "training forever)"


def too_long(path) -> str:
    """The words for a path the system refuses as too long (ENAMETOOLONG)."""
    longest = max((len(os.fsencode(part)) for part in Path(path).parts), default=0)
    return (f"the path is longer than the system allows ({len(os.fsencode(str(path))):,} bytes, its longest name "
            f"{longest:,} bytes; the limits are usually {os.pathconf('/', 'PC_PATH_MAX'):,} and "
            f"{os.pathconf('/', 'PC_NAME_MAX'):,})")


def location_problem(location) -> Optional[str]:
    """A data location's problem that comes before its kind's own checks: a path too long
    for the system, or a loop of links. None when it can be looked at."""
    try:
        os.stat(location)
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            return f"{shown(location)}: {too_long(location)}"
        if e.errno == errno.ELOOP:
            return f"{location}: is a loop of symbolic links"
    return None


def shown(path, limit: int = 120) -> str:
    """A path for a message, its middle cut when it is very long."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}…{text[-limit // 2:]}"


def too_many_pixels(size, budget) -> str:
    """The words for an image over the pixel budget.

    >>> too_many_pixels((20000, 20000), 50_000_000)
    '20000×20000 = 400 megapixels, more than data.max_pixels (50 megapixels): decoding it would take 1.2 GB or more'
    """
    width, height = size
    return (f"{width}×{height} = {width * height / 1e6:,.0f} megapixels, more than data.max_pixels "
            f"({budget / 1e6:,.0f} megapixels): decoding it would take {width * height * 3 / 1e9:,.1f} GB or more")


def class_folders(root) -> list:
    """The sub-folders of `root` (hidden ones left out), sorted: a class each. A link loop or
    a dangling link is no folder (the files in the folders are checked one by one)."""
    return sorted(p for p in Path(root).iterdir() if not p.name.startswith(".") and _is_folder(p))


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def labels_of(outputs: int) -> int:
    """How many classes a model's last axis stands for: a sigmoid output is two.

    >>> labels_of(1), labels_of(10)
    (2, 10)
    """
    return 2 if outputs == 1 else outputs


def class_count_problem(what, names, outputs):
    """The problem (a DataError: message and hint) of a source whose class count is not the
    model's, or None (also when `outputs` is None: the labels are not the model's outputs)."""
    if outputs is None or len(names) == labels_of(outputs):
        return None
    listed = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
    return DataError(f"{what} has {len(names)} classes ({listed}), but the model's last layer has "
                     f"{outputs} output{'s' if outputs > 1 else ''}",
                     f"give the last layer {len(names)} units (or filters), or use data that matches it")


def empty_class_folder(folder) -> "DataError":
    folder = Path(folder)
    return DataError(f"{folder}: class folder '{folder.name}' has no images ({', '.join(IMAGE_SUFFIXES)})",
                     "add images, or remove the folder")


def needs_path(kind: str, example: str) -> Invalid:
    return Invalid(f"data source '{kind}' needs a path",
                   f"add 'path: …', or write the path as the source, e.g. source: {example}")


# ── a split, and what a reader checks it against ──────────────────────────────────────────

@record(frozen=True)
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
        import numpy as np
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


@record()
class Reading:
    """What every source checks against (the model's task and outputs, the spec's input) and
    how a bad item is reported: an error, or with `on_bad: skip` a (file, reason) in `skipped`."""

    task: str                 # classification | segmentation
    outputs: int              # the model's last axis
    label_shape: tuple        # (H, W) of the masks for segmentation, () otherwise
    input_shape: tuple
    skip: bool
    skipped: list = field(default_factory=list)
    max_pixels: int = 50_000_000      # data.max_pixels: the largest image decoded (width × height, from its header)

    @property
    def labels(self) -> int:
        return 2 if self.outputs == 1 else self.outputs      # a sigmoid output is two classes

    def bad(self, file, reason, hint=""):
        """A bad item: an error, or (on_bad: skip) counted and left out."""
        if self.skip:
            self.skipped.append((str(file), reason))
            return
        raise DataError(f"{file}: {reason}", hint or "set data.on_bad: skip to leave such files out")

    def classes_must_match(self, what, names):
        problem = class_count_problem(what, names, self.outputs)
        if problem:
            raise problem

    def check_channels(self, file, have):
        channels = self.input_shape[2]
        if not channels_fit(have, channels):
            raise DataError(f"{file}: images have {have} channels; the spec's input has {channels} "
                            "(1, 3 or 4 channels convert to 1 or 3)")

    def labels_in_range(self, y, where):
        """The rows whose labels (or mask values) are classes of the model; reports the others."""
        import numpy as np
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
            channels, size, reason = image_info(path)
            if reason is not None:
                self.bad(path, reason, "replace or delete the file, or set data.on_bad: skip to leave such files out")
            elif size is not None and size[0] * size[1] > self.max_pixels:
                self.bad(path, too_many_pixels(size, self.max_pixels),
                         "resize it, set data.on_bad: skip to leave such files out, or raise data.max_pixels")
            elif not channels_fit(channels, self.input_shape[2]):
                self.bad(path, f"has {channels} channels; the spec's input has {self.input_shape[2]} "
                               "(1, 3 or 4 channels convert to 1 or 3)")
            else:
                good.append(i)
                seen.add(channels)
        return good, seen

    def read_mask(self, path):
        """A mask file → [H, W] uint8 class numbers at the output size (nearest neighbour), or None."""
        import numpy as np
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
