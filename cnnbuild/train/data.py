"""Data sources → the splits a run trains and validates on.

    load_data(spec, output_shape) → Loaded     read and check every source (its reader in
                                              sources/ names bad files), split off validation data
    Pipeline(loaded, spec, …)  (pipeline.py)  tf.data: shuffle (file names, encoded records) →
                                              decode → resize (uint8) → (cache → shuffle) →
                                              batch → scale → augment (AUTOTUNE) → prefetch
    bench_input(spec)                         the pipeline alone, timed (`cnnbuild data bench`)

Bad data is found before training starts where that needs no decoding: a missing path or
an empty class folder before TensorFlow loads (sources.data_problems), an unreadable file or
one whose channels do not fit from its header (the source's reader), each named; with `on_bad: skip` left
out and counted. Damaged pixel data behind a good header is skipped and counted while
training (pipeline.py), never a crash.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import Problem, SpecError
from ..sources import DataError, Part, Reading, labels_from_folders, read_source


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
    class_folders: bool = False                   # the classes are the names of class folders

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
    reading = Reading(task, outputs, label_shape, spec.input, skip=data.on_bad == "skip", max_pixels=data.max_pixels)
    train = read_source(data, reading, spec.train.seed)
    classes = train.classes
    validation = None
    if data.validation is not None:
        before = len(reading.skipped)
        validation = read_source(data.validation, reading, spec.train.seed + 1)
        reading.skipped[before:] = [(file, f"{reason} (validation data)") for file, reason in reading.skipped[before:]]
        if data.classes is None and labels_from_folders(data.validation) and validation.classes != classes:
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
    return Loaded(train, validation, classes, task, outputs, label_shape, _name(data), reading.skipped,
                  labels_from_folders(data))


def _name(source) -> str:
    return source.kind if source.location is None else f"{source.kind} {source.location}"


def bench_input(spec, batches=50, out=None) -> dict:
    """Time the input pipeline alone (read, decode, preprocess, augment; no model): the first
    batch (start-up) and then `batches` batches. Returns images per second and the pipeline's
    description, so a user sees whether input or compute is the bottleneck."""
    import time

    from ..augment import make_augment
    from ..check import infer
    from ..sources import precheck
    from .pipeline import Pipeline
    report = infer(spec)
    if not report.valid:
        raise SpecError(report.errors)
    precheck(spec.data, report.output)
    started = time.perf_counter()
    import tensorflow as tf
    tf.random.set_seed(spec.train.seed + 1)     # as train does: a graph-level seed of 0 breaks epoch seeds
    loaded = load_data(spec, report.output)
    augment = make_augment(spec.augment, spec.input, loaded.task, loaded.label_shape)
    pipeline = Pipeline(loaded, spec.input, spec.train.batch_size, spec.train.seed, augment=augment, data=spec.data,
                        folder=out)
    iterator = iter(pipeline.train_epochs(0, 10 ** 6))
    next(iterator)
    first = time.perf_counter() - started
    began, images = time.perf_counter(), 0
    for _ in range(batches):
        images += int(next(iterator)[0].shape[0])
    seconds = time.perf_counter() - began
    return {"images": images, "seconds": round(seconds, 3), "images_per_second": images / seconds if seconds else None,
            "first_batch_seconds": round(first, 3), "pipeline": pipeline.describe(), "data": loaded.describe()}


PROFILE_SAMPLE = 64   # images read to describe the training set: enough for a median


def image_profile(part) -> dict:
    """What the training images look like, for predict to compare a user's files with: their
    median size, their usual channel count, and their median background level and polarity
    (preprocess.background: the digits are light strokes on a dark ground)."""
    import numpy as np

    from ..preprocess import background, polarity
    sizes, channels, levels = [], [], []
    # a file whose pixels are damaged is left out here as training leaves it out
    for image, _ in part.dataset().ignore_errors().take(PROFILE_SAMPLE):
        pixels = np.asarray(image)
        sizes.append(pixels.shape[:2])
        channels.append(pixels.shape[-1])
        levels.append(background(pixels))
    if not sizes:
        return {}
    level = float(np.median(levels))
    return {"height": int(np.median([h for h, _ in sizes])), "width": int(np.median([w for _, w in sizes])),
            "channels": max(set(channels), key=channels.count), "background": round(level, 1),
            "polarity": polarity(level), "sampled": len(sizes)}

