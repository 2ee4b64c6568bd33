"""`digits`: scikit-learn's bundled 1,797 8×8 scans of handwritten digits, offline (the default)."""
from __future__ import annotations

from .common import Against, DataError, Part, Reading, SourceKind, class_count_problem

CLASSES = [str(i) for i in range(10)]    # the digits 0…9
DIGITS_MAX = 16                          # load_digits' pixel values are 0…16


def classes(source, folder=None) -> list:
    return list(CLASSES)


def problems(source, against: Against) -> list:
    """The class count against the model's outputs (not when only files are asked about)."""
    if against.task != "classification" or against.files_only:
        return []
    problem = class_count_problem("digits", CLASSES, against.outputs)
    return [problem] if problem else []


def read(source, reading: Reading, seed) -> Part:
    """scikit-learn's bundled 8×8 scans, 0…16 → 0…255."""
    if reading.task != "classification":
        raise DataError("digits has class labels, not masks: segmentation needs data.source shapes, a directory "
                        "with images/ and masks/, or an npz with masks")
    import numpy as np
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.round(digits.images * (255.0 / DIGITS_MAX)).astype(np.uint8)[..., None]
    reading.classes_must_match("digits", CLASSES)
    return Part({"image": images, "label": digits.target.astype(np.int32)}, list(CLASSES))


KIND = SourceKind("digits", example="digits", read=read, classes=classes, problems=problems)
