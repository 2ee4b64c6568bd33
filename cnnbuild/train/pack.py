"""`cnnbuild data pack`: a class-folder directory, an npz or a prepared tfds dataset
(`tfds:NAME`, from a local data_dir) → sharded TFRecord files and index.json (classes,
counts, image size, the records in each shard), which `data.source` reads as a tfrecord
source without scanning anything but the index.

Records are spread over the shards in a seeded random order, so every shard holds every
class and a bounded shuffle buffer mixes well (a directory or an npz is written in that
order; a tfds split, read once in its stored order, sends each record to a random shard).
Files are read, resized and encoded a thread per core. The folder appears whole or not at
all: everything is written into a hidden sibling folder, index.json last, and renamed into place.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from ..check.data import PACK_INDEX, DataError, class_folders, image_files
from ..errors import first_line
from .images import image_header

FORMAT = "cnnbuild-pack-1"
RECORDS_PER_SHARD = 2_000      # the default shard count: files of a few to a few hundred MB


def read_index(root) -> dict:
    """A packed folder's index.json, checked; DataError naming the folder otherwise."""
    path = Path(root) / PACK_INDEX
    try:
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


def _items(source, size):
    """(encoded image bytes, label, channels) for each image of `source`, and the class names."""
    from PIL import Image
    source = Path(source)
    if source.suffix.lower() == ".npz":
        with np.load(source, allow_pickle=False) as archive:
            x, y = archive["x"], archive["y"].reshape(-1).astype(np.int64)
            classes = [str(c) for c in archive["classes"]] if "classes" in archive else \
                [str(i) for i in range(int(y.max()) + 1)]
        x = x[..., None] if x.ndim == 3 else x

        def from_array(i):
            image = Image.fromarray(np.clip(np.round(x[i]), 0, 255).astype(np.uint8).squeeze(-1) if x.shape[-1] == 1
                                    else np.clip(np.round(x[i]), 0, 255).astype(np.uint8))
            return _png(image, size), int(y[i]), x.shape[-1]
        return [lambda i=i: from_array(i) for i in range(len(x))], classes, []
    if not source.is_dir():
        raise DataError(f"{source}: no such folder or .npz file")
    folders = class_folders(source)
    if not folders:
        raise DataError(f"{source}: has no class sub-folders")
    items, skipped = [], []
    for label, folder in enumerate(folders):
        for path in image_files(folder):
            channels, reason = image_header(path)
            if reason is not None:
                skipped.append((path, reason))
                continue

            def encoded(path=path, label=label, channels=channels):
                if size is None:
                    return Path(path).read_bytes(), label, channels
                with Image.open(path) as image:
                    return _png(image.convert("RGB" if channels >= 3 else "L"), size), label, min(channels, 3)
            items.append(encoded)
    return items, [p.name for p in folders], skipped


def _png(image, size) -> bytes:
    from PIL import Image
    if size is not None:
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _tfds_items(name, data_dir, split, size):
    """(a generator of (encoded image, label, channels) in the split's stored order, the
    split's size, the class names, skipped) for a prepared tfds dataset; nothing is downloaded."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError("packing a tfds dataset needs the tensorflow-datasets package") from None
    where = f" in {data_dir}" if data_dir else ""
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    except Exception as e:      # DatasetNotFoundError and friends
        raise DataError(f"tfds dataset '{name}' not found{where}: {first_line(str(e))}") from None
    if not prepared:
        raise DataError(f"tfds dataset '{name}' is not prepared{where}\n  hint: prepare it once with the tfds CLI "
                        "(tfds build NAME --data_dir DIR), or give --data-dir where it is")
    info = builder.info
    if split not in info.splits:
        raise DataError(f"tfds dataset '{name}' has no split '{split}' (it has: {', '.join(info.splits)})")
    image = info.features["image"] if "image" in info.features else None
    label = info.features["label"] if "label" in info.features else None
    if not isinstance(image, tfds.features.Image) or not hasattr(label, "names"):
        raise DataError(f"tfds dataset '{name}': pack needs an 'image' feature (an Image) and a 'label' feature "
                        f"(a ClassLabel); it has: {', '.join(info.features)}")
    # the images stay encoded as tfds stored them (PNG or JPEG) unless --size asks to resize
    records = builder.as_dataset(split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})

    def items():
        from PIL import Image
        for example in records.as_numpy_iterator():
            encoded, number = example["image"], int(example["label"])
            channels, reason = image_header(io.BytesIO(encoded))
            if reason is not None:
                raise DataError(f"tfds dataset '{name}' {split}: {reason}")
            if size is not None:
                with Image.open(io.BytesIO(encoded)) as opened:
                    encoded, channels = _png(opened.convert("RGB" if channels >= 3 else "L"), size), min(channels, 3)
            yield encoded, number, channels
    return items(), info.splits[split].num_examples, list(label.names)


def _in_parallel(calls, chunk: int = 256):
    """Each call's result in order, a chunk at a time over a thread per core: reading files
    and PIL's resizing and PNG encoding release the GIL, so the reads overlap (the order, and
    so each record's shard, is the same as one at a time)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        batch = []
        for call in calls:
            batch.append(call)
            if len(batch) == chunk:
                yield from pool.map(lambda read: read(), batch)
                batch = []
        yield from pool.map(lambda read: read(), batch)


def pack(source, out, shards=None, size=None, seed=0, progress=None, data_dir=None, split="train") -> dict:
    """Write `source` (a class-folder directory, an .npz, or 'tfds:NAME' prepared in
    `data_dir`, its `split`) to `out` as shards and index.json; returns the index. `size`
    (h, w) resizes every image (stored as PNG); without it files are stored as they are."""
    import tensorflow as tf
    out = Path(out)
    if out.exists():
        raise DataError(f"{out}: already exists\n  hint: choose another --out, or delete the folder")
    rng = np.random.default_rng(seed)
    if str(source).startswith("tfds:"):
        stream, total, classes = _tfds_items(str(source)[len("tfds:"):], data_dir, split, size)
        skipped = []
        shards = shards or max(1, math.ceil(total / RECORDS_PER_SHARD))
        shard_of = rng.permutation(total) % shards           # balanced: each shard total/shards records
    else:
        items, classes, skipped = _items(source, size)
        total = len(items)
        shards = shards or max(1, math.ceil(total / RECORDS_PER_SHARD))
        stream = _in_parallel(items[i] for i in rng.permutation(total))
        shard_of = np.arange(total) * shards // max(total, 1)   # the shuffled order cut into equal runs
    if not total:
        raise DataError(f"{source}: has no readable images")
    working = out.parent / f".{out.name}.packing-{os.getpid()}"
    working.mkdir(parents=True)
    names = [f"shard-{shard:05d}-of-{shards:05d}.tfrecord" for shard in range(shards)]
    written, channels, done = [0] * shards, set(), 0
    show = progress or (lambda done, total: print(f"\rpacked {done:,}/{total:,}", end="", file=sys.stderr, flush=True))
    try:
        with contextlib.ExitStack() as stack:
            writers = [stack.enter_context(tf.io.TFRecordWriter(str(working / name))) for name in names]
            for encoded, label, have in stream:
                channels.add(int(have))
                example = tf.train.Example(features=tf.train.Features(feature={
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}))
                shard = int(shard_of[done])
                writers[shard].write(example.SerializeToString())
                written[shard] += 1
                done += 1
                if done % 500 == 0 or done == total:
                    show(done, total)
        if progress is None:
            print(file=sys.stderr)
        index = {"format": FORMAT, "task": "classification", "classes": classes, "count": total,
                 "channels": max(channels), "channel_counts": sorted(channels), "image_size": list(size) if size else None,
                 "shards": [{"file": name, "count": count} for name, count in zip(names, written)],
                 "skipped": [{"file": f, "reason": r} for f, r in skipped]}
        (working / PACK_INDEX).write_text(json.dumps(index, indent=1))   # last: a folder without it is no pack
        os.rename(working, out)
    except BaseException:
        shutil.rmtree(working, ignore_errors=True)
        raise
    return index
