"""What can be known about a spec's data without TensorFlow: a missing path, a folder with no
class sub-folders, an empty class folder, the class count against the model's outputs.

`cnnbuild train` runs `data_problems` before it imports TensorFlow, so such mistakes are
answered in well under a second instead of after TensorFlow's start-up; `cnnbuild check`
reports them too when the spec's data section names files. The training stage's readers
(train/sources.py) say the same things in the same words when they read the data.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import Failure
from ..parse.sections import TFRECORD_SUFFIXES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
FILE_KINDS = ("directory", "npz", "tfrecord")
BUILT_IN_CLASSES = {"digits": [str(i) for i in range(10)], "shapes": ["circle", "square", "triangle"]}
PACK_INDEX = "index.json"                              # what `cnnbuild data pack` writes beside its shards


class DataError(Failure):
    """The data cannot be used; the message names the file (and how to fix it)."""


def image_files(folder) -> list:
    """The image files directly in `folder` (by suffix, hidden files left out), sorted."""
    with os.scandir(folder) as entries:
        return sorted(e.path for e in entries if not e.name.startswith(".") and e.is_file()
                      and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)


def class_folders(root) -> list:
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def tfrecord_files(pattern) -> list:
    """A folder's .tfrecord files, or the files a glob names, sorted."""
    if os.path.isdir(pattern):
        return sorted(f for f in glob.glob(os.path.join(pattern, "*")) if f.lower().endswith(TFRECORD_SUFFIXES))
    return sorted(glob.glob(pattern))


def labels_of(outputs: int) -> int:
    """How many classes a model's last axis stands for: a sigmoid output is two."""
    return 2 if outputs == 1 else outputs


def class_count_problem(what, names, outputs):
    """The message for a source whose class count is not the model's, or None."""
    if len(names) == labels_of(outputs):
        return None
    listed = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
    return (f"{what} has {len(names)} classes ({listed}), but the model's last layer has "
            f"{outputs} output{'s' if outputs > 1 else ''}\n  hint: give the last layer "
            f"{len(names)} units (or filters), or use data that matches it")


def empty_class_folder(folder) -> str:
    folder = Path(folder)
    return (f"{folder}: class folder '{folder.name}' has no images ({', '.join(IMAGE_SUFFIXES)})\n"
            "  hint: add images, or remove the folder")


def task_of(data, output_shape) -> str:
    if data.task != "auto":
        return data.task
    return "segmentation" if len(output_shape) == 3 else "classification"


def data_problems(data, output_shape, files_only=False) -> list:
    """Every problem with `data` (a spec's Data section) found by looking at the file system:
    a list of messages, empty when nothing is wrong. `files_only`: only sources that name
    files (what `cnnbuild check` reports; a spec checked for its model alone keeps digits)."""
    task, outputs = task_of(data, output_shape), output_shape[-1]
    problems = []
    for source in [data] + ([data.validation] if data.validation is not None else []):
        kind, location = source.kind, source.location
        if kind in BUILT_IN_CLASSES and task == "classification" and not files_only:
            problem = class_count_problem(kind, BUILT_IN_CLASSES[kind], outputs)
            problems += [problem] if problem else []
        elif kind == "npz" and not os.path.isfile(location):
            problems.append(f"{location}: no such file" if not os.path.exists(location) else f"{location}: is not a file")
        elif kind == "tfrecord" and not os.path.isfile(os.path.join(location, PACK_INDEX)) and not tfrecord_files(location):
            problems.append(f"{location}: no such file"
                            + (" (no .tfrecord files in the folder)" if os.path.isdir(location) else ""))
        elif kind == "directory":
            problems += _directory_problems(location, task, outputs, data.on_bad == "skip")
    return problems


def _directory_problems(location, task, outputs, skip) -> list:
    root = Path(location)
    if not root.exists():
        return [f"{root}: no such folder"]
    if not root.is_dir():
        return [f"{root}: is not a folder"]
    if (root / PACK_INDEX).is_file():        # a folder `cnnbuild data pack` wrote
        return []
    if task == "segmentation":
        images, masks = root / "images", root / "masks"
        return [f"{folder}: no such folder\n  hint: for segmentation put images in {images} and masks (PNG, pixel "
                f"value = class number) with the same names in {masks}" for folder in (images, masks)
                if not folder.is_dir()][:1]
    folders = class_folders(root)
    if not folders:
        return [f"{root}: has no class sub-folders\n  hint: put each class's images in its own folder: "
                f"{root}/cat/1.png, {root}/dog/1.png"]
    problem = class_count_problem(str(root), [p.name for p in folders], outputs)
    if problem:
        return [problem]
    return [] if skip else [empty_class_folder(folder) for folder in folders if not image_files(folder)]


def precheck(data, output_shape) -> None:
    """Raise DataError with the first problem `data_problems` finds (train, before TensorFlow)."""
    problems = data_problems(data, output_shape)
    if problems:
        raise DataError(problems[0])


def precheck_spec(spec) -> None:
    """`precheck` for a whole Spec (its model's output from the static check)."""
    from .report import infer
    report = infer(spec)
    if report.valid:
        precheck(spec.data, report.output)
