"""The tf.data pipeline of one run: decode → preprocess → cache, then per epoch shuffle →
batch → augment (AUTOTUNE) → prefetch. Every image goes through `preprocess.preprocess`,
the function export and predict use too."""
from __future__ import annotations

from ..preprocess import preprocess

SHUFFLE_SALT = 1_000_003  # epoch e shuffles with seed·SALT + e, so an epoch's order does not depend on resumes
PREPROCESS_BATCH = 256   # arrays are preprocessed this many at a time


class Pipeline:
    """tf.data for one run: decode → preprocess → cache, then per epoch shuffle (seeded by
    the epoch, so a resumed run sees the same order) → batch → augment (parallel, AUTOTUNE) →
    prefetch. Augmentation (`augment(images, labels, seed)`) runs on training batches only.

    `dense_labels` turns class numbers into one-hot vectors (for label smoothing, mixup,
    cutmix)."""

    def __init__(self, loaded, input_shape, batch_size, seed, augment=None, dense_labels=False, cache=True):
        import tensorflow as tf
        self.tf = tf
        self.loaded, self.input_shape, self.batch_size, self.seed = loaded, tuple(input_shape), batch_size, seed
        self.augment, self.dense_labels = augment, dense_labels
        self.train_base = self._base(loaded.train, cache)
        self.validation_base = self._base(loaded.validation, cache) if loaded.validation else None

    def _base(self, part, cache):
        """(image float32 [H, W, C] in 0…1, label) for each item of a `sources.Part`, cached
        after decoding."""
        tf = self.tf
        shape, label_shape, AUTOTUNE = self.input_shape, self.loaded.label_shape, tf.data.AUTOTUNE
        segmentation = self.loaded.task == "segmentation"

        def mask(labels):
            if not segmentation:
                return tf.cast(labels, tf.int32)
            resized = tf.image.resize(tf.cast(labels, tf.uint8)[..., None], label_shape, method="nearest")
            return tf.cast(resized[..., 0], tf.int32)

        data = part.dataset(part.columns)
        if data.element_spec[0].shape.is_fully_defined():   # images of one size (arrays): preprocessed in batches
            data = data.batch(PREPROCESS_BATCH)
            data = data.map(lambda x, y: (preprocess(x, shape), mask(y)), num_parallel_calls=AUTOTUNE).unbatch()
        else:                                                # decoded files: each its own size and channels
            data = data.map(lambda x, y: (preprocess(x[None], shape)[0], mask(y)), num_parallel_calls=AUTOTUNE)
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
