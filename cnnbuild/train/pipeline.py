"""The tf.data pipeline of one run. Every image goes through `preprocess.preprocess`, the
function export and predict use too: in two halves, resized to the input as uint8 when
decoded (`fitted_uint8`), scaled to float32 per batch (`preprocess` of the batch).

    arrays (digits, shapes, npz)   in memory → preprocess in batches → cache → per epoch shuffle
    files (directory)              the file list in a permutation seeded by the epoch → decode +
                                   preprocess (parallel, AUTOTUNE) → …
    records (tfrecord, tfds)       the shards in an order seeded by the epoch, 4 interleaved →
                                   a bounded buffer of encoded records → decode + preprocess → …
    cached (cache: memory, disk)   decoded once → cache → a bounded buffer of decoded images → …
    then                           batch → scale to 0…1, labels → augment (parallel, AUTOTUNE) → prefetch

Memory stays bounded: a decoded copy is cached only where `data.cache` says so (`auto`: in
memory when the decoded images fit the budget, a quarter of physical memory unless
`cache_budget` says otherwise), as uint8 (a byte a pixel and channel, a quarter of float32's:
at 12,000 64×64 files float32 took 1.70× the peak memory of Keras's
image_dataset_from_directory and grew 45% from 3,000 files), and a streamed epoch is shuffled before decoding: a file
list by a permutation (8 bytes a file), records through a buffer of at most `shuffle_buffer`
encoded records; decoded images are buffered (`shuffle_buffer` of them) only when cached.
A file whose header was fine but whose pixels are damaged fails only when decoded: it is
dropped (`ignore_errors`), counted, and the epoch is filled up to its full count from the
start of the same epoch's order, so every epoch has the same number of steps.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..preprocess import fitted_uint8, preprocess

SHUFFLE_SALT = 1_000_003  # epoch e shuffles with seed·SALT + e, so an epoch's order does not depend on resumes
PREPROCESS_BATCH = 256   # arrays are preprocessed this many at a time
BUDGET_SHARE = 4         # cache: auto keeps decoded images in memory up to 1/4 of physical memory
MIB = 2 ** 20
CACHE_FOLDER = "data-cache"   # cache: disk writes its files here, inside the run folder
CACHE_FILE = "{}-uint8"       # its files per split; the dtype in the name: a float32 cache of older runs is not read
COUNTED_EPOCHS = 1024    # epochs whose decoded images are counted at once (the prefetch runs ahead by one or two)


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class CacheChoice:
    """Where decoded images are kept: memory, disk (`file`) or none, and why (for the header line)."""

    where: str
    why: str
    file: str = ""

    def describe(self) -> str:
        return f"cache {self.where} ({self.why})"


def choose_cache(setting, decoded_bytes, budget_mib=None, folder=None) -> CacheChoice:
    """`data.cache` (auto, memory, disk, true, false) and the decoded size → a CacheChoice.

    >>> choose_cache("auto", 300 * MIB, budget_mib=1000).describe()
    'cache memory (300 MiB decoded fits the 1,000 MiB budget)'
    >>> choose_cache("auto", 3000 * MIB, budget_mib=1000).describe()
    'cache none (3,000 MiB decoded exceeds the 1,000 MiB budget: files are decoded again each epoch)'
    """
    size = f"{decoded_bytes / MIB:,.0f} MiB decoded"
    if setting is True or setting == "memory":
        return CacheChoice("memory", f"data.cache: memory, {size}")
    if setting is False:
        return CacheChoice("none", "data.cache: false, decoded again each epoch")
    if setting == "disk":
        if folder is None:
            return CacheChoice("none", "data.cache: disk needs a run folder")
        return CacheChoice("disk", f"data.cache: disk, {size}", str(Path(folder) / CACHE_FOLDER))
    budget = budget_mib * MIB if budget_mib else physical_memory() // BUDGET_SHARE
    where = "the data.cache_budget" if budget_mib else "a quarter of memory"
    budget_text = f"{budget / MIB:,.0f} MiB budget" if budget_mib else f"{budget / MIB:,.0f} MiB budget, {where}"
    if decoded_bytes <= budget:
        return CacheChoice("memory", f"{size} fits the {budget_text}")
    return CacheChoice("none", f"{size} exceeds the {budget_text}: files are decoded again each epoch")


class Pipeline:
    """tf.data for one run (see the module's docstring). Augmentation (`augment(images,
    labels, seed)`) runs on training batches only; `dense_labels` turns class numbers into
    one-hot vectors (for label smoothing, mixup, cutmix). `data` (the spec's data section)
    gives cache, cache_budget and shuffle_buffer, unless they are given; `folder`: the run
    folder (for cache: disk)."""

    def __init__(self, loaded, input_shape, batch_size, seed, augment=None, dense_labels=False, cache="auto",
                 cache_budget=None, shuffle_buffer=10_000, folder=None, data=None):
        import tensorflow as tf
        if data is not None:
            cache, cache_budget, shuffle_buffer = data.cache, data.cache_budget, data.shuffle_buffer
        self.tf = tf
        self.loaded, self.input_shape, self.batch_size, self.seed = loaded, tuple(input_shape), batch_size, seed
        self.augment, self.dense_labels = augment, dense_labels
        self.shuffle_buffer = min(shuffle_buffer, max(loaded.train.count, 1))
        image_bytes = self.input_shape[0] * self.input_shape[1] * self.input_shape[2]   # uint8 until batched
        count = loaded.train.count + (loaded.validation.count if loaded.validation else 0)
        self.cache = choose_cache(cache, count * image_bytes, cache_budget, folder)
        if self.cache.where == "disk":
            Path(self.cache.file).mkdir(parents=True, exist_ok=True)
            for stale in Path(self.cache.file).glob("*.lockfile"):   # left by a killed run; the run folder is ours
                stale.unlink()
        self.streamed = not loaded.train.in_memory
        # images decoded whole in each training epoch (slot epoch % COUNTED_EPOCHS): a corrupt
        # file is the difference to the epoch's count; one slot per epoch, since the prefetch
        # is already decoding the next epoch when an epoch ends
        self.decoded = tf.Variable(tf.zeros([COUNTED_EPOCHS], tf.int64), trainable=False) if self.streamed else None
        self.corrupt_per_epoch = {}
        self.counting = False    # train_epochs counts; a multi-worker run's own shards are not counted
        # a file list's columns as variables, made once here (eagerly), read by every epoch's dataset
        self.tables = {name: part.tables() for name, part in (("train", loaded.train), ("validation", loaded.validation))
                       if part is not None and part.decode is not None and part.stream is None}
        self.warned = False
        self.train_base = self._cached(loaded.train, "train")
        self.validation_base = self._cached(loaded.validation, "validation") if loaded.validation else None

    def describe(self) -> str:
        """For the train header: the cache chosen and why, the decoding."""
        decoding = "parallel decode (AUTOTUNE)" if self.streamed else "in memory"
        return f"{decoding}, {self.cache.describe()}, {self.shuffle_text()}"

    def shuffle_text(self) -> str:
        """What the shuffle holds: a whole file list, encoded records, or decoded images."""
        part = self.loaded.train
        if self.train_base is None and part.stream is None:
            return f"the {part.count:,} file names reshuffled each epoch"
        if self.train_base is None:
            return f"shuffle buffer {self.shuffle_buffer:,} encoded records"
        if self.cache.where == "disk":
            size = self.shuffle_buffer * self.input_shape[0] * self.input_shape[1] * self.input_shape[2]
            return f"shuffle buffer {self.shuffle_buffer:,} decoded images ({size / MIB:,.0f} MiB)"
        return f"shuffle buffer {self.shuffle_buffer:,} decoded images"

    # ── decoding ──────────────────────────────────────────────────────────────────────────

    def _decoded(self, part, order_seed=None):
        """(image uint8 [H, W, C], label) for each item of a `sources.Part`: resized to the
        input, not yet scaled (`_batch` scales); a mask stays uint8 until batched too."""
        tf = self.tf
        shape, label_shape, AUTOTUNE = self.input_shape, self.loaded.label_shape, tf.data.AUTOTUNE
        segmentation = self.loaded.task == "segmentation"

        def mask(labels):
            if not segmentation:
                return tf.cast(labels, tf.int32)
            return tf.image.resize(tf.cast(labels, tf.uint8)[..., None], label_shape, method="nearest")[..., 0]

        data = part.dataset(order_seed, self.shuffle_buffer, self.tables.get("train" if part is self.loaded.train else
                                                                             "validation" if part is self.loaded.validation
                                                                             else None))
        plain = tf.autograph.experimental.do_not_convert   # see train_epochs
        if data.element_spec[0].shape.is_fully_defined():   # images of one size (arrays): preprocessed in batches
            data = data.batch(PREPROCESS_BATCH)
            data = data.map(plain(lambda x, y: (fitted_uint8(x, shape), mask(y))), num_parallel_calls=AUTOTUNE).unbatch()
        else:                                                # decoded files: each its own size and channels
            data = data.map(plain(lambda x, y: (fitted_uint8(x[None], shape)[0], mask(y))), num_parallel_calls=AUTOTUNE)
        if part.in_memory:
            # a known length lets Keras size its progress bar and evaluation without a warning
            return data.apply(tf.data.experimental.assert_cardinality(part.count))
        return data.ignore_errors(log_warning=False)   # damaged pixel data: dropped here, counted per epoch

    def _cached(self, part, name):
        """The part decoded once and cached (memory or disk), or None when decoded each epoch."""
        if self.cache.where == "none" and not part.in_memory:
            return None
        data = self._decoded(part)
        if self.cache.where == "none":
            return data
        return data.cache(os.path.join(self.cache.file, CACHE_FILE.format(name)) if self.cache.where == "disk" else "")

    def _epoch_items(self, seed):
        """One epoch's decoded training items in their shuffled order: streamed ones shuffled
        before decoding (file names, encoded records), cached ones through the buffer."""
        if self.train_base is None:
            return self._decoded(self.loaded.train, order_seed=seed)
        return self.train_base.shuffle(self.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)

    def _batch(self, images, labels):
        """A batch as the model takes it: uint8 images scaled to float32 0…1 (`preprocess`:
        they are already the input's size), labels as the loss wants them."""
        tf = self.tf
        images = preprocess(images, self.input_shape)
        if self.loaded.outputs == 1:                       # a sigmoid: float 0/1, with a channel axis
            labels = tf.cast(labels, tf.float32)[..., None]
        elif self.dense_labels:
            labels = tf.one_hot(labels, self.loaded.outputs)
        else:
            labels = tf.cast(labels, tf.int32)             # masks are kept as uint8 until here
        return images, labels

    def _options(self, data):
        tf = self.tf
        options = tf.data.Options()
        options.deterministic = True        # seeded: the same order and augmentation on every run and resume
        # no autotuning model: its thread re-optimises after waits that double (10 ms, 20 ms, …)
        # and an iterator's teardown waits out the current one, measured (TF 2.21) up to 1.2 s
        # after 2 short epochs and 5–18 s at the end of longer runs (fit's return stalled);
        # without it, AUTOTUNE means one call per core, what autotuning settled on here anyway
        options.autotune.enabled = False
        options.experimental_optimization.map_parallelization = True
        options.threading.max_intra_op_parallelism = 1   # tf.data's guide: one thread per op, many ops at once
        return data.with_options(options)

    def train_epoch(self, epoch, shard=None):
        """One epoch's batches; `epoch` may be a tensor (inside flat_map). `shard` =
        (input pipelines, this one's index, batch per replica) gives each worker of a
        multi-worker run an equal part of the same shuffled order, in whole batches."""
        tf = self.tf
        salt = tf.cast(epoch, tf.int64)
        seed = tf.constant(self.seed * SHUFFLE_SALT, tf.int64) + salt
        count = self.loaded.train.count
        if shard and self._by_files(shard[0]):
            return self._worker_epoch(seed, salt, shard)
        data = self._epoch_items(seed)
        if self.streamed:
            decoded, slot = self.decoded, [[salt % COUNTED_EPOCHS]]

            def counted(image, label):
                decoded.scatter_nd_add(slot, [1])
                return image, label
            # a dropped (corrupt) item is replaced by the next of the same epoch's order, again from its start
            data = data.map(counted).concatenate(self._epoch_items(seed).repeat()).take(count)
            data = data.apply(tf.data.experimental.assert_cardinality(count))
        if shard:
            pipelines, index, batch = shard
            data = data.take((count // pipelines) * pipelines).shard(pipelines, index)
            data = data.batch(batch, drop_remainder=True)
        else:
            data = data.batch(self.batch_size)
        return self._finish(data, salt)

    def _by_files(self, workers) -> bool:
        """Multi-worker: does each worker read its own shards? Yes with at least as many record
        files as workers; with fewer, every worker reads all and takes its part of the data."""
        files = self.loaded.train.files
        if files and files < workers and not self.warned:
            import sys
            print(f"warning: {files} record file{'s' if files != 1 else ''} for {workers} workers: each worker reads "
                  f"every file and keeps 1/{workers} of the images (pack with --shards {workers} or more to give each "
                  "its own files)", file=sys.stderr)
            self.warned = True
        return files >= workers and self.loaded.train.share is not None

    def _worker_epoch(self, seed, salt, shard):
        """This worker's shards (disjoint from the other workers', together all of them), in
        whole batches: count // workers images, filled up from its own start when its files
        hold fewer, so every worker runs the same steps."""
        workers, index, batch = shard
        part = self.loaded.train.worker_part(index, workers)
        share = self.loaded.train.count // workers

        def items():
            return self._decoded(part, order_seed=seed)
        data = items().concatenate(items().repeat()).take(share)
        return self._finish(data.batch(batch, drop_remainder=True), salt)

    def _finish(self, data, salt):
        """Batches → scaled, labels → augmentation → tf.data options."""
        tf = self.tf
        data = data.map(self._batch, num_parallel_calls=tf.data.AUTOTUNE)
        if self.augment is not None:
            augment, augment_seed = self.augment, self.seed

            def step(i, batch):
                images, labels = batch
                return augment(images, labels, tf.stack([tf.constant(augment_seed, tf.int64) * SHUFFLE_SALT + salt, i]))
            data = data.enumerate().map(step, num_parallel_calls=tf.data.AUTOTUNE)
        return self._options(data)

    def train_epochs(self, start, end):
        """Epochs start…end−1 back to back, for Keras's fit with steps_per_epoch."""
        tf = self.tf
        # not converted by AutoGraph: the epoch's code is plain Python building tf.data (no tensor
        # conditions), and converting it and all it calls took 1–2 s of every start, measured
        epoch = tf.autograph.experimental.do_not_convert(self.train_epoch)
        self.counting = self.streamed
        return self._options(tf.data.Dataset.range(start, end).flat_map(epoch).prefetch(tf.data.AUTOTUNE))

    def corrupt_in_epoch(self, epoch):
        """How many training images of `epoch` (1-based, just finished) were dropped while
        decoding (damaged pixel data behind a good header), or None where not counted (arrays
        in memory, or a multi-worker run). Exact once the epoch's last batch is taken: every
        image of the epoch's order has been decoded or dropped by then."""
        if not self.counting:
            return None
        slot = (epoch - 1) % COUNTED_EPOCHS
        decoded = int(self.decoded[slot].numpy())
        self.decoded.scatter_nd_update([[slot]], [0])     # free for epoch + COUNTED_EPOCHS
        self.corrupt_per_epoch[epoch] = max(0, self.loaded.train.count - decoded)
        return self.corrupt_per_epoch[epoch]

    def corrupt_skipped(self):
        """The most training images one epoch of this session dropped while decoding (the
        same in every epoch: the same files), or None where not counted."""
        if not self.corrupt_per_epoch:
            return None
        return max(self.corrupt_per_epoch.values())

    def validation(self):
        if self.loaded.validation is None:
            return None
        tf = self.tf
        def base():
            if self.validation_base is not None:
                return self.validation_base
            return self._decoded(self.loaded.validation)
        data = base()
        if not self.loaded.validation.in_memory:
            # a known length (Keras warns on a dataset that ends unannounced): a corrupt file's
            # place is taken by the first image again, which shifts the metrics by at most 1/count each
            count = self.loaded.validation.count
            data = data.concatenate(base().repeat()).take(count)
            data = data.apply(tf.data.experimental.assert_cardinality(count))
        return self._options(data.batch(self.batch_size).map(self._batch).prefetch(tf.data.AUTOTUNE))
