"""Data sources → the splits a run trains and validates on.

    load_data(spec, output_shape) → Loaded     read and check every source (sources.py names
                                              bad files), split off validation data
    Pipeline(loaded, spec, …)  (pipeline.py)  tf.data: decode → preprocess → cache → shuffle
                                              → batch → augment (AUTOTUNE) → prefetch

Bad data is found before training starts, not in the middle of an epoch: files are decoded
once up front (Keras's image_dataset_from_directory would fail only while iterating), and
each failure names the file. With `on_bad: skip` bad items are left out and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import Problem, SpecError
from .sources import SOURCES, DataError, Part, Reading


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


def task_of(spec, output_shape) -> str:
    """classification for a vector output, segmentation for an H×W×K map."""
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
    reading = Reading(task, outputs, label_shape, spec.input, skip=data.on_bad == "skip")
    train = SOURCES[data.kind](data, reading, spec.train.seed)
    classes = train.classes
    validation = None
    if data.validation is not None:
        validation = SOURCES[data.validation.kind](data.validation, reading, spec.train.seed + 1)
        if data.classes is None and data.validation.kind == "directory" and validation.classes != classes:
            raise DataError(f"{data.validation.location}: validation classes {validation.classes} differ from the "
                            f"training classes {classes}")
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
    return Loaded(train, validation, classes, task, outputs, label_shape, _name(data), reading.skipped)


def _name(source) -> str:
    return source.kind if source.location is None else f"{source.kind} {source.location}"
