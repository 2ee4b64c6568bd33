"""What training optimises and reports: the learning-rate schedule, the optimizer, the loss
and the metrics, chosen from the spec's `train:` section and the built model."""
from __future__ import annotations

import dataclasses
import math

from ..errors import UsageError

PRECISION_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def precision_policy(mixed_precision, accelerator) -> str:
    """Keras's dtype policy for `train.mixed_precision`; `auto` takes what the accelerator
    computes fastest (bfloat16 on TPUs, float16 on GPUs) and float32 on a CPU.

    >>> precision_policy("auto", "gpu"), precision_policy("auto", "cpu"), precision_policy("bfloat16", "cpu")
    ('mixed_float16', 'float32', 'mixed_bfloat16')
    """
    if mixed_precision == "auto":
        return {"tpu": "mixed_bfloat16", "gpu": "mixed_float16"}.get(accelerator, "float32")
    return PRECISION_POLICIES[mixed_precision]


def make_schedule(keras, section, steps_per_epoch, epochs):
    """The learning rate at each optimizer step, from the `schedule:` section. A cosine
    schedule decays over one *cycle*, from epoch 0 to `epochs`; `restart` starts a new one
    (a finished run given more epochs), from the base rate without the warm-up again."""
    import tensorflow as tf
    base = section.optimizer.base_learning_rate
    schedule = section.schedule

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        first_epoch, last_epoch = 0, epochs       # the cosine cycle; read when the step is traced

        def restart(self, first_epoch, last_epoch):
            """Decay over epochs first_epoch+1 … last_epoch (set before training traces the step)."""
            self.first_epoch, self.last_epoch = first_epoch, last_epoch

        def __call__(self, step):
            step = tf.cast(step, tf.float32) - float(self.first_epoch * steps_per_epoch)
            warmup_steps = float(schedule.warmup * steps_per_epoch) if self.first_epoch == 0 else 0.0
            total_steps = float(max((self.last_epoch - self.first_epoch) * steps_per_epoch, 1))
            after = tf.maximum(step - warmup_steps, 0.0)
            rate = tf.constant(base, tf.float32)
            if schedule.name == "step":
                every = float((schedule.every or 10) * steps_per_epoch)
                rate = base * tf.pow(schedule.factor or 0.1, tf.floor(after / every))
            elif schedule.name == "cosine":
                final = schedule.final or 0.0
                progress = tf.minimum(after / max(total_steps - warmup_steps, 1.0), 1.0)
                rate = base * (final + (1 - final) * 0.5 * (1 + tf.cos(math.pi * progress)))
            if warmup_steps:
                rate = tf.where(step < warmup_steps, base * (step + 1) / warmup_steps, rate)
            return rate

        def get_config(self):
            return {"base": base, "schedule": dataclasses.asdict(schedule), "steps_per_epoch": steps_per_epoch,
                    "cycle": [self.first_epoch, self.last_epoch]}
    return Schedule()


def make_optimizer(keras, section, schedule):
    chosen = section.optimizer
    classes = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
               "rmsprop": keras.optimizers.RMSprop}
    arguments = {key: getattr(chosen, key) for key in ("momentum", "nesterov", "beta_1", "beta_2", "rho", "epsilon",
                                                        "weight_decay", "clipnorm") if getattr(chosen, key) is not None}
    return classes[chosen.name](learning_rate=schedule, **arguments)


@dataclasses.dataclass
class Objective:
    """Loss and metrics for a task, and the label form they need."""

    loss: object
    metrics: list
    dense_labels: bool      # one-hot (label smoothing, mixup, cutmix, categorical_crossentropy)
    from_logits: bool
    names: tuple


def make_objective(keras, spec, task, outputs, probabilities: bool) -> Objective:
    """`probabilities`: the built model ends in softmax or sigmoid (the check's Report.ends_in_probabilities),
    so with `from_logits: auto` the loss takes probabilities; otherwise logits."""
    from ..augment import needs_dense_labels
    from ..parse.sections import metric_names
    section = spec.train
    from_logits = (not probabilities) if section.from_logits == "auto" else section.from_logits
    binary = outputs == 1
    name = section.loss
    if name == "auto":
        name = "binary_crossentropy" if binary else (
            "categorical_crossentropy" if section.label_smoothing or needs_dense_labels(spec.augment)
            else "sparse_categorical_crossentropy")
    if binary and name != "binary_crossentropy":
        raise UsageError(f"train.loss {name} needs one output per class, but the model has a single output "
                         "(a sigmoid): use binary_crossentropy or loss: auto")
    if not binary and name == "binary_crossentropy":
        raise UsageError(f"train.loss binary_crossentropy needs a single sigmoid output; the model has {outputs}")
    if name == "sparse_categorical_crossentropy" and needs_dense_labels(spec.augment):
        raise UsageError("mixup and cutmix blend labels, which sparse_categorical_crossentropy cannot take: use loss: "
                         "auto or categorical_crossentropy")
    dense = name == "categorical_crossentropy"
    if name == "binary_crossentropy":
        loss = keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=section.label_smoothing)
    elif dense:
        loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=section.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    names = metric_names(section, task)
    metrics = []
    for metric in names:
        if metric == "accuracy":
            metrics.append(keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if from_logits else 0.5) if binary
                           else keras.metrics.CategoricalAccuracy(name="accuracy") if dense
                           else keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
        elif metric == "mean_iou":
            metrics.append(keras.metrics.BinaryIoU(target_class_ids=[0, 1], threshold=0.0 if from_logits else 0.5,
                                                   name="mean_iou") if binary
                           else keras.metrics.MeanIoU(num_classes=outputs, sparse_y_true=not dense, sparse_y_pred=False,
                                                      name="mean_iou"))
        else:   # top_5_accuracy
            if task != "classification" or outputs <= 5:
                raise UsageError(f"top_5_accuracy needs classification with more than 5 classes "
                                 f"(this is {task} with {outputs})")
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top_5_accuracy") if dense
                           else keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top_5_accuracy"))
    return Objective(loss, metrics, dense, from_logits, names)
