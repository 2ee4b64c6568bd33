"""`cnnbuild data pack`: a class-folder directory or an npz → sharded TFRecord files and
index.json (classes, counts, image size, the records in each shard), which `data.source`
reads as a tfrecord source without scanning anything but the index.

Records are written in a seeded random order, so every shard holds every class and a
bounded shuffle buffer mixes well. The folder appears whole or not at all: everything is
written into a hidden sibling folder, index.json last, and renamed into place.
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from ..check.data import PACK_INDEX, DataError, class_folders, image_files
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


def pack(source, out, shards=None, size=None, seed=0, progress=None) -> dict:
    """Write `source` to `out` as shards and index.json; returns the index. `size` (h, w)
    resizes every image (stored as PNG); without it files are stored as they are."""
    import tensorflow as tf
    out = Path(out)
    if out.exists():
        raise DataError(f"{out}: already exists\n  hint: choose another --out, or delete the folder")
    items, classes, skipped = _items(source, size)
    if not items:
        raise DataError(f"{source}: has no readable images")
    shards = shards or max(1, math.ceil(len(items) / RECORDS_PER_SHARD))
    order = np.random.default_rng(seed).permutation(len(items))
    working = out.parent / f".{out.name}.packing-{os.getpid()}"
    working.mkdir(parents=True)
    counts, channels, done = [], set(), 0
    show = progress or (lambda done, total: print(f"\rpacked {done:,}/{total:,}", end="", file=sys.stderr, flush=True))
    try:
        for shard, part in enumerate(np.array_split(order, shards)):
            name = f"shard-{shard:05d}-of-{shards:05d}.tfrecord"
            with tf.io.TFRecordWriter(str(working / name)) as writer:
                for i in part:
                    encoded, label, have = items[i]()
                    channels.add(int(have))
                    example = tf.train.Example(features=tf.train.Features(feature={
                        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}))
                    writer.write(example.SerializeToString())
                    done += 1
                    if done % 500 == 0 or done == len(items):
                        show(done, len(items))
            counts.append({"file": name, "count": len(part)})
        if progress is None:
            print(file=sys.stderr)
        index = {"format": FORMAT, "task": "classification", "classes": classes, "count": len(items),
                 "channels": max(channels), "image_size": list(size) if size else None, "shards": counts,
                 "skipped": [{"file": f, "reason": r} for f, r in skipped]}
        (working / PACK_INDEX).write_text(json.dumps(index, indent=1))   # last: a folder without it is no pack
        os.rename(working, out)
    except BaseException:
        shutil.rmtree(working, ignore_errors=True)
        raise
    return index
