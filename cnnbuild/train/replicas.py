"""Replicas: keeping them identical, and telling. Keras 3 leaves a few things per replica
that training must make equal itself; the digest lets separate workers be compared."""
from __future__ import annotations

import hashlib

import numpy as np


def replica_state_sync(tf, strategy, model):
    """A function averaging the non-trainable float variables (batchnorm's moving statistics)
    over all replicas and workers. Keras 3 updates them per replica without aggregation, so
    replicas drift apart within an epoch; averaging at every epoch end makes them equal
    again (what tf.keras's ON_READ/MEAN variables returned when read)."""
    floats = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]
    if strategy.num_replicas_in_sync == 1 or not floats:
        return lambda: None

    @tf.function
    def means():
        def replica():
            context = tf.distribute.get_replica_context()
            return [context.all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(v.value)) for v in floats]
        return strategy.run(replica)

    def sync():
        for variable, mean in zip(floats, means()):
            variable.assign(strategy.experimental_local_results(mean)[0])
    return sync


def broadcast_from_chief(tf, strategy, tensors):
    """All workers get the chief's values: an all-reduce SUM where only replica 0 contributes."""
    @tf.function
    def run(values):
        def replica(values):
            context = tf.distribute.get_replica_context()
            first = tf.equal(context.replica_id_in_sync_group, 0)
            out = list(values)
            for dtype in {v.dtype for v in values}:    # one all-reduce per dtype (they cannot mix)
                group = [i for i, v in enumerate(values) if v.dtype == dtype]
                summed = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                            [tf.where(first, values[i], tf.zeros_like(values[i])) for i in group])
                for i, value in zip(group, summed):
                    out[i] = value
            return out
        return strategy.run(replica, args=(values,))
    results = run([tf.constant(v) for v in tensors])
    return [strategy.experimental_local_results(r)[0].numpy() for r in results]


def local_copies(variable) -> list:
    """The per-device values of a (possibly mirrored) variable on this worker."""
    value = getattr(variable, "value", variable)
    values = getattr(value, "values", None)
    return [np.asarray(v.numpy()) for v in values] if values else [np.asarray(variable.numpy())]


def weights_digest(model) -> str:
    digest = hashlib.sha256()
    for variable in model.variables:
        digest.update(np.ascontiguousarray(local_copies(variable)[0]).tobytes())
    return digest.hexdigest()


def replicas_identical(model) -> bool:
    return all(all(np.array_equal(copies[0], c) for c in copies[1:])
               for copies in (local_copies(v) for v in model.variables))
