"""`cnnbuild data pack` (`sources.pack`): a source that has a packer (a class-folder directory, an npz, a
prepared tfds dataset) → sharded TFRecord files and index.json (classes, counts, image
size, the records in each shard), which `data.source` reads as a tfrecord (or directory)
source without scanning anything but the index (tfrecord.read_packed).

Records are spread over the shards in a seeded random order, so every shard holds every
class and a bounded shuffle buffer mixes well (a directory or an npz is written in that
order; a tfds split, read once in its stored order, sends each record to a random shard).
Files are read, resized and encoded a thread per core. The folder appears whole or not at
all: everything is written into a hidden sibling folder, index.json last, and renamed into place.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

from .common import PACK_INDEX, DataError, Packing
from .tfrecord import FORMAT

RECORDS_PER_SHARD = 2_000      # the default shard count: files of a few to a few hundred MB


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


def write(packing: Packing, source, out, shards=None, size=None, seed=0, progress=None) -> dict:
    """Write what a kind's packer read of `source` to `out` (which must not exist) as shards
    and index.json; returns the index. `size` (h, w) was the packer's: images resized and
    stored as PNG; without it files are stored as they are."""
    import numpy as np
    import tensorflow as tf
    out = Path(out)
    rng = np.random.default_rng(seed)
    classes, total, skipped = packing.classes, packing.total, packing.skipped
    shards = shards or max(1, math.ceil(total / RECORDS_PER_SHARD))
    if packing.stream is not None:     # read once in stored order: each record to a random shard
        stream = packing.stream
        shard_of = rng.permutation(total) % shards           # balanced: each shard total/shards records
    else:                              # read in a seeded permutation, cut into equal runs
        stream = _in_parallel(packing.items[i] for i in rng.permutation(total))
        shard_of = np.arange(total) * shards // max(total, 1)
    if not total:
        raise DataError(f"{source}: has no readable images")
    working = out.parent / f".{out.name}.packing-{os.getpid()}"
    working.mkdir(parents=True)
    names = [f"shard-{shard:05d}-of-{shards:05d}.tfrecord" for shard in range(shards)]
    written, channels, done = [0] * shards, set(), 0
    # a count rewritten in place on a terminal; into a pipe or a log, "\r" would run the counts together
    on_terminal = progress is None and sys.stderr.isatty()
    show = progress or ((lambda done, total: print(f"\rpacked {done:,}/{total:,}", end="", file=sys.stderr, flush=True))
                        if on_terminal else (lambda done, total: None))
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
        if on_terminal:
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
