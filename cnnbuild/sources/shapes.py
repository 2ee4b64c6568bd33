"""`shapes`: generated, seeded circles, squares and triangles on a noisy ground, with masks
(classification or segmentation, offline)."""
from __future__ import annotations

import math

from .common import Against, Part, Reading, SourceKind, class_count_problem

SHAPE_CLASSES = ("circle", "square", "triangle")
MAX_GENERATED_BYTES = 2 << 30    # the images are generated in memory, as float32 while preprocessed


def classes(source, folder=None) -> list:
    return list(SHAPE_CLASSES)


def problems(source, against: Against) -> list:
    """The class count against the model's outputs, for classification."""
    if against.task != "classification" or against.files_only:
        return []
    problem = class_count_problem("shapes", list(SHAPE_CLASSES), against.outputs)
    return [problem] if problem else []


def limits(source, input_shape) -> list:
    """`samples` images of the spec's input size must fit the budget for generated data.

    >>> from types import SimpleNamespace
    >>> limits(SimpleNamespace(samples=2000), (32, 32, 3))            # 2000 · 32·32·3 · 4 bytes = 23 MiB
    []
    >>> limits(SimpleNamespace(samples=10**6), (224, 224, 3))[0][2]   # 2 GiB / (224·224·3 · 4 bytes)
    'use samples: 3566 or fewer'
    """
    generated = source.samples * math.prod(input_shape) * 4   # float32 images held in memory
    if generated <= MAX_GENERATED_BYTES:
        return []
    return [("samples", f"data.samples {source.samples:,} of {'×'.join(map(str, input_shape))} images take "
             f"{generated / 2**30:.1f} GiB, over the {MAX_GENERATED_BYTES >> 30} GiB budget for generated data",
             f"use samples: {MAX_GENERATED_BYTES // (math.prod(input_shape) * 4)} or fewer")]


def generate_shapes(count, height, width, channels, seed):
    """`count` images (uint8 [count, height, width, channels]) of one shape each on a noisy
    background, with class labels (0 circle, 1 square, 2 triangle) and masks (0 background,
    1 + class inside the shape). Colour, size and position vary; the same seed gives the
    same images."""
    import numpy as np
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    images = np.empty((count, height, width, channels), np.uint8)
    masks = np.zeros((count, height, width), np.uint8)
    labels = rng.integers(0, len(SHAPE_CLASSES), count).astype(np.int32)
    side = min(height, width)
    for i in range(count):
        radius = rng.uniform(0.18, 0.38) * side
        cy = rng.uniform(radius, height - radius)
        cx = rng.uniform(radius, width - radius)
        dy, dx = rows - cy, cols - cx
        if labels[i] == 0:
            inside = dy * dy + dx * dx <= radius * radius
        elif labels[i] == 1:
            half = radius * 0.8                  # a square of about the circle's area
            inside = (np.abs(dy) <= half) & (np.abs(dx) <= half)
        else:                                    # an upward triangle inscribed in the circle
            inside = (dy >= -radius) & (dy <= radius / 2) & (np.abs(dx) * np.sqrt(3) <= dy + radius)
        background = rng.uniform(0, 90, channels)
        colour = rng.uniform(140, 255, channels)
        noise = rng.normal(0, 12, (height, width, channels))
        image = np.where(inside[..., None], colour, background) + noise
        images[i] = np.clip(np.round(image), 0, 255).astype(np.uint8)
        masks[i][inside] = labels[i] + 1
    return images, labels, masks


def read(source, reading: Reading, seed) -> Part:
    """Generated circles, squares and triangles, with masks."""
    import numpy as np
    height, width, channels = reading.input_shape
    images, labels, masks = generate_shapes(source.samples, height, width, channels, seed)
    if reading.task == "classification":
        names = list(SHAPE_CLASSES)
        reading.classes_must_match("shapes", names)
        return Part({"image": images, "label": labels}, names)
    if reading.labels == 2:                     # foreground / background
        return Part({"image": images, "label": (masks > 0).astype(np.uint8)}, ["background", "shape"])
    names = ["background", *SHAPE_CLASSES]
    reading.classes_must_match("shapes masks", names)
    return Part({"image": images, "label": masks}, names)


KIND = SourceKind("shapes", example="shapes", read=read, classes=classes, problems=problems, limits=limits)
