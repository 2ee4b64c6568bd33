"""Data sources, one module each, found by name in SOURCES:

    digits     scikit-learn's bundled 8×8 scans (the offline default)
    shapes     generated, seeded circles, squares and triangles, with masks
    directory  class sub-folders; images/ + masks/ for segmentation; a packed folder
    npz        arrays x and y (or masks) in one file
    tfrecord   an encoded image and a label (or an encoded mask) per record; packed shards
    tfds       a prepared tensorflow-datasets dataset, downloaded only when asked

Each module holds everything about its kind in one `SourceKind`: the rules of its `data:`
section (whether `path:` applies, the example in a hint), its static facts found without
TensorFlow (`classes`, the file-system `problems`), its tf.data reader and its packer for
`cnnbuild data pack` (packing.py). The spec parser asks this registry which kind a `source:`
names and whether a section is whole, without looking at the disk; `cnnbuild check` and
`cnnbuild train` (before TensorFlow starts) ask `data_problems`; the training stage's
`load_data` (train/data.py) calls the readers. Nothing else asks "is this a directory?".
"""
from __future__ import annotations

import difflib
from typing import Optional

from ..errors import Invalid
from . import digits, directory, npz, shapes, tfds, tfrecord
from .common import (PACK_INDEX, Against, DataError, Packing, Part, Reading, SourceKind, class_folders,
                     image_files, location_problem, resolved)

__all__ = ["SOURCES", "PACK_INDEX", "Against", "DataError", "Packing", "Part", "Reading", "SourceKind",
           "class_folders", "classes_origin", "data_problems", "image_files", "labels_from_folders", "location_of",
           "lookup", "pack", "precheck", "read_source", "register", "section_error", "section_limits", "source_kind",
           "static_classes", "task_of"]

SOURCES: dict[str, SourceKind] = {}
FALLBACK = "directory"      # what any other path names: a folder


def register(kind: SourceKind) -> SourceKind:
    """Add a kind to SOURCES; a name registered twice is refused."""
    if kind.name in SOURCES:
        raise ValueError(f"data source '{kind.name}' is registered twice")
    SOURCES[kind.name] = kind
    return kind


for _module in (digits, shapes, directory, npz, tfrecord, tfds):   # this order: the order kinds are listed in messages
    register(_module.KIND)


def lookup(name: str) -> SourceKind:
    return SOURCES[name]


def source_kind(source: str, strict: bool = True) -> tuple[str, Optional[str]]:
    """What a `source:` value names: (kind, location), decided from the text alone.

    A kind's name; a kind's prefix (`tfds:mnist`); a path naming a kind's files (`x.npz`,
    `data/*.tfrec`); else a folder. With `strict`, a bare word close to a kind's name is a
    misspelling (write `./shapes_png` for a folder named like that): the parser cannot look
    whether such a folder exists, and the data check says when a folder does not.

    >>> source_kind("digits"), source_kind("runs/x.npz"), source_kind("tfds:mnist")
    (('digits', None), ('npz', 'runs/x.npz'), ('tfds', 'mnist'))
    >>> source_kind("flowers"), source_kind("./shapes_png")
    (('directory', 'flowers'), ('directory', './shapes_png'))
    >>> source_kind("digts")
    Traceback (most recent call last):
    cnnbuild.errors.Invalid: unknown data source 'digts'
    """
    if source in SOURCES:
        return source, None
    for kind in SOURCES.values():
        if kind.prefix and source.startswith(kind.prefix):
            return kind.name, source[len(kind.prefix):] or None
    lowered = source.lower()
    for kind in SOURCES.values():
        if kind.names is not None and kind.names(lowered):
            return kind.name, source
    if strict and not any(mark in source for mark in ("/", "\\", ".")):
        close = difflib.get_close_matches(source, list(SOURCES), n=1, cutoff=0.75)
        if close:
            raise Invalid(f"unknown data source '{source}'",
                          f"did you mean '{close[0]}'? (a folder named like that: write ./{source})")
    return FALLBACK, source


def location_of(section) -> Optional[str]:
    """The path (or tfds name) a `data:` section reads: from `source`, else from the kind's
    own key (`path`, `name`)."""
    kind, written = source_kind(section.source)
    return SOURCES[kind].where(section, written)


def section_error(section) -> Optional[Invalid]:
    """What makes a `data:` section (or its `validation:` source) unreadable for its kind, or None."""
    kind = SOURCES[section.kind]
    if kind.takes_path and section.location is None:
        return Invalid(f"data source '{kind.name}' needs a path",
                       f"add 'path: …', or write the path as the source, e.g. source: {kind.example}")
    if section.path is not None and not kind.takes_path:
        readers = [name for name, other in SOURCES.items() if other.takes_path]
        return Invalid(f"'path' is for {', '.join(readers[:-1])} and {readers[-1]} sources, not {kind.name}",
                       f"remove 'path', or set source: {' / '.join(readers)}")
    if kind.rules is not None:
        try:
            kind.rules(section)
        except Invalid as e:
            return e
    return None


def section_limits(section, input_shape) -> list:
    """[(key, message, hint)]: what the kind cannot read at the spec's input size."""
    kind = SOURCES[section.kind]
    return kind.limits(section, input_shape) if kind.limits is not None else []


def static_classes(data, folder: Optional[str] = None) -> Optional[list]:
    """The class names of `data` known without reading its images, or None: `data.classes`;
    else its kind's (the built-in sources' lists, a directory's class folders, an npz's stored
    `classes`, a pack's index). `folder`: where relative paths are read from. The one answer
    to "how many classes" before any data is read."""
    given = getattr(data, "classes", None)      # a `validation:` source has no `classes:`
    if given is not None:
        return list(given)
    kind = SOURCES[data.kind]
    if kind.takes_path and data.location and location_problem(resolved(data.location, folder)):
        return None                             # a path too long, a loop of links: data_problems names it
    return kind.classes(data, folder)


def classes_origin(data, folder: Optional[str] = None) -> Optional[tuple[int, str]]:
    """(how many classes `static_classes` finds, what says so, for a message), or None."""
    names = static_classes(data, folder)
    if names is None:
        return None
    if getattr(data, "classes", None) is not None:
        return len(names), f"data.classes lists {len(names)}"
    kind = SOURCES[data.kind]
    return len(names), (kind.origin(data, folder, names) if kind.origin is not None
                        else f"the {kind.name} data has {len(names)}")


def labels_from_folders(data) -> bool:
    """Whether the source's class names are its class folders' (compared by name, not count)."""
    return SOURCES[data.kind].labels_from_folders


def task_of(data, output_shape) -> str:
    """classification or segmentation: `data.task`, else from the model's output (an H×W×K map segments)."""
    if data.task != "auto":
        return data.task
    return "segmentation" if output_shape is not None and len(output_shape) == 3 else "classification"


def data_problems(data, output_shape, files_only=False, folder: Optional[str] = None) -> list:
    """Every problem with `data` (a spec's Data section) found by looking at the file system:
    a list of DataErrors (each its message and hint), empty when nothing is wrong. `output_shape`: the model's (None when
    the labels are not its outputs, as for a GAN's discriminator). `files_only`: only sources
    that name files (what `cnnbuild check` reports; a spec checked for its model alone keeps
    digits). `folder`: where relative paths are read from (None: as written)."""
    against = Against(task_of(data, output_shape), output_shape[-1] if output_shape is not None else None,
                      data.on_bad == "skip", files_only, folder)
    found = []
    for source in [data] + ([data.validation] if data.validation is not None else []):
        kind = SOURCES[source.kind]
        problem = location_problem(resolved(source.location, folder)) if kind.takes_path and source.location else None
        found += [DataError(problem)] if problem else kind.problems(source, against)
    return found


def read_source(section, reading, seed):
    """A section's data read by its kind, after what no kind can look at: a path longer than
    the system allows, a loop of links (each named, never an OSError)."""
    kind = SOURCES[section.kind]
    problem = location_problem(section.location) if kind.takes_path and section.location else None
    if problem:
        raise DataError(problem)
    return kind.read(section, reading, seed)


def precheck(data, output_shape) -> None:
    """Raise DataError with the first problem `data_problems` finds (train, before TensorFlow)."""
    problems = data_problems(data, output_shape)
    if problems:
        raise problems[0]


def pack(source, out, shards=None, size=None, seed=0, progress=None, data_dir=None, split="train") -> dict:
    """`cnnbuild data pack`: `source` (a class-folder directory, an .npz, or 'tfds:NAME'
    prepared in `data_dir`, its `split`: a kind with a packer) → shards and index.json in
    `out`, which must not exist (packing.py); returns the index. `size` (h, w) resizes every
    image (stored as PNG); without it files are stored as they are."""
    from pathlib import Path

    from .packing import write
    if Path(out).exists():
        raise DataError(f"{out}: already exists\n  hint: choose another --out, or delete the folder")
    kind, location = source_kind(str(source), strict=False)
    packer = SOURCES[kind].pack
    if packer is None:
        readers = [name for name, other in SOURCES.items() if other.pack is not None]
        raise DataError(f"{source}: a {kind} source cannot be packed\n  hint: pack one of: {', '.join(readers)}")
    return write(packer(location, size, data_dir=data_dir, split=split), source, out, shards, size, seed, progress)
