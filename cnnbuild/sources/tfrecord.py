"""`tfrecord`: an encoded image and a label (or an encoded mask) per tf.train.Example, in
files a folder or a glob names; and a folder `cnnbuild data pack` wrote (shards of checked
records and index.json), read without scanning anything but the index."""
from __future__ import annotations

import glob
import io
import json
import os
from pathlib import Path

from ..errors import first_line
from ..preprocess import channels_fit
from .common import (PACK_INDEX, Against, DataError, Part, Reading, SourceKind, not_regular, resolved,
                     written_or_path)
from .images import image_header, op_error_text

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec")
SHARDS_READ = 4          # record files read at once, interleaved record by record (more mixing, parallel reads)
FORMAT = "cnnbuild-pack-1"


def names(text: str) -> bool:
    """`x.tfrecord`, or a glob of such files (`data/*.tfrec`), names tfrecord files.

    >>> names("data/train.tfrecords"), names("data/*.tfrec"), names("data/train-*")
    (True, True, False)
    """
    return text.endswith(TFRECORD_SUFFIXES) or any(f"{s}*" in text or f"*{s}" in text for s in TFRECORD_SUFFIXES)


def tfrecord_files(pattern) -> list:
    """A folder's .tfrecord files, or the files a glob names, sorted."""
    if os.path.isdir(pattern):
        return sorted(f for f in glob.glob(os.path.join(pattern, "*")) if f.lower().endswith(TFRECORD_SUFFIXES))
    return sorted(glob.glob(pattern))


def problems(source, against: Against) -> list:
    """The files are there (a pack's index, or record files)."""
    location = resolved(source.location, against.folder)
    if os.path.isfile(os.path.join(location, PACK_INDEX)):
        return []
    files = tfrecord_files(location)
    if files:     # a FIFO or a device would block the reader forever: refused before TensorFlow
        return [] if against.skip else [DataError(f"{file}: {reason}") for file in files if (reason := not_regular(file))]
    return [DataError(f"{location}: no such file" + (" (no .tfrecord files in the folder)" if os.path.isdir(location)
                                                      else ""))]


def classes(source, folder=None):
    """A pack's class names, from its index; None for plain record files (known only by reading them)."""
    index = Path(resolved(source.location, folder), PACK_INDEX)
    if not_regular(index):     # absent, or a FIFO that would block the read
        return None
    try:
        return list(json.loads(index.read_text())["classes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_index(root) -> dict:
    """A packed folder's index.json, checked; DataError naming the folder otherwise."""
    path = Path(root) / PACK_INDEX
    try:
        if not_regular(path):
            raise ValueError(not_regular(path))
        index = json.loads(path.read_text())
        if index.get("format") != FORMAT:
            raise ValueError(f"format is {index.get('format')!r}, not {FORMAT!r}")
        for shard in index["shards"]:
            if not (Path(root) / shard["file"]).is_file():
                raise ValueError(f"shard {shard['file']} is missing")
        index["classes"], index["channels"], index["task"]      # noqa: B018 (present)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: is not a usable pack index ({e})\n  hint: pack the data again with "
                        "cnnbuild data pack SOURCE --out DIR") from None
    return index


def record_parser(source, task, channels=0):
    """A function raw tfrecord bytes → (uint8 image [h, w, c], label or mask); `channels` (1
    or 3) fixes the decoded channel count where every record is known to have it."""
    import tensorflow as tf
    if task == "segmentation":
        features = {source.image_feature: tf.io.FixedLenFeature([], tf.string),
                    source.mask_feature: tf.io.FixedLenFeature([], tf.string)}
    else:
        features = {source.image_feature: tf.io.FixedLenFeature([], tf.string),
                    source.label_feature: tf.io.FixedLenFeature([], tf.int64)}

    def parse(raw):
        example = tf.io.parse_single_example(raw, features)
        image = tf.io.decode_image(example[source.image_feature], channels=channels, expand_animations=False,
                                   dtype=tf.uint8)
        if task == "segmentation":
            return image, tf.io.decode_png(example[source.mask_feature], channels=1)[..., 0]
        return image, example[source.label_feature]
    return parse


def read(data, reading: Reading, seed) -> Part:
    """Records with an encoded image and a label (or an encoded mask). Each record is read
    once here to check its features, its image header and its label (nothing is decoded
    and nothing kept); training streams the files again in their stored order."""
    import numpy as np
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
    for file in list(files):
        reason = not_regular(file)
        if reason is not None:
            reading.bad(file, reason, "remove it, or set data.on_bad: skip to leave it out")
            files.remove(file)
    if not files:
        raise DataError(f"{pattern}: no readable record files")
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
    import numpy as np
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
    import numpy as np
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
        return selected(records, columns["record"], total)

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


def selected(dataset, positions, total):
    """The items of `dataset` (of `total` items) at `positions`: all of them, or a filter."""
    import numpy as np
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
    import numpy as np
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


KIND = SourceKind("tfrecord", example="data/train.tfrecord", read=read, classes=classes, problems=problems,
                  takes_path=True, where=written_or_path, names=names)
