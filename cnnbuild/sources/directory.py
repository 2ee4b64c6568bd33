"""`directory`: a folder of class sub-folders (a class each, named by the folder), or
images/ and masks/ for segmentation; or a folder `cnnbuild data pack` wrote. Files are
listed and their headers read (no pixels); they are decoded inside tf.data while training."""
from __future__ import annotations

import os
from pathlib import Path

from . import tfrecord
from .common import (IMAGE_SUFFIXES, PACK_INDEX, Against, DataError, Packing, Part, Reading, SourceKind,
                     class_count_problem, class_folders, empty_class_folder, image_entries, image_files, resolved,
                     too_many_pixels, written_or_path)

MAX_PIXELS = 50_000_000      # pack decodes to resize: the same budget as training's default data.max_pixels
from .images import decode_image, image_info, png_bytes


def classes(source, folder=None):
    """The class folders' names (or a pack's classes); None when the folder is not there."""
    root = Path(resolved(source.location, folder))
    try:     # a path the system refuses to look at (a name too long, a loop) is as absent
        if (root / PACK_INDEX).is_file():
            return tfrecord.classes(source, folder)
        if not root.is_dir():
            return None
    except OSError:
        return None
    return [p.name for p in class_folders(root)]


def origin(source, folder, names) -> str:
    """What says how many classes there are, for a message."""
    listed = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
    return f"the data folder {resolved(source.location, folder)} has {len(names)} class folders ({listed})"


def problems(source, against: Against) -> list:
    """The folder is there and holds class sub-folders (or images/ and masks/), as many
    as the model has outputs, none of them empty (unless `on_bad: skip`); a pack's folder
    is taken as it is."""
    root = Path(resolved(source.location, against.folder))
    task, outputs = against.task, against.outputs
    if not root.exists():
        return [DataError(f"{root}: no such folder")]
    if not root.is_dir():
        return [DataError(f"{root}: is not a folder")]
    if (root / PACK_INDEX).is_file():        # a folder `cnnbuild data pack` wrote
        return []
    if task == "segmentation":
        images, masks = root / "images", root / "masks"
        return [DataError(f"{folder}: no such folder", f"for segmentation put images in {images} and masks (PNG, "
                          f"pixel value = class number) with the same names in {masks}") for folder in (images, masks)
                if not folder.is_dir()][:1]
    folders = class_folders(root)
    if not folders:
        return [DataError(f"{root}: has no class sub-folders",
                          f"put each class's images in its own folder: {root}/cat/1.png, {root}/dog/1.png")]
    problem = class_count_problem(str(root), [p.name for p in folders], outputs)
    if problem:
        return [problem]
    return [] if against.skip else [empty_class_folder(folder) for folder in folders if not image_files(folder)]


def path_column(paths):
    """File names as bytes (1 byte a character; numpy's str takes 4): 1.28 M ImageNet paths
    are ~100 MB, the one part of a directory source that stays in memory."""
    import numpy as np
    return np.asarray([os.fsencode(p) for p in paths], dtype=bytes)


def file_decoder(channels: set):
    """row → (the file decoded, its label or mask), inside tf.data. When every file has the
    same 1 or 3 channels (their headers say), they are decoded with that count fixed: the
    same pixels, and a known shape lets `preprocess` skip choosing a conversion per image
    (~20% more images/second, measured); mixed files decode as stored (channels=0)."""
    fixed = next(iter(channels)) if len(channels) == 1 and channels <= {1, 3} else 0

    def decode(row):
        return decode_image(row["path"], fixed), row["label"]
    return decode


def read(data, reading: Reading, seed) -> Part:
    """Class sub-folders, or images/ + masks/ for segmentation."""
    import numpy as np
    root = Path(data.location)
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: is not a folder")
    if (root / PACK_INDEX).is_file():
        return tfrecord.read_packed(data, root, reading)
    if reading.task == "segmentation":
        return _image_and_mask_folders(root, reading)
    folders = class_folders(root)
    if not folders:
        raise DataError(f"{root}: has no class sub-folders\n  hint: put each class's images in its own folder: "
                        f"{root}/cat/1.png, {root}/dog/1.png")
    classes = [p.name for p in folders]
    reading.classes_must_match(str(root), classes)
    paths, labels = [], []
    for label, folder in enumerate(folders):
        files, strays = image_entries(folder)
        for stray, reason in strays:
            reading.bad(stray, reason, "remove it, or set data.on_bad: skip to leave such entries out")
        if not files and not reading.skip:
            raise empty_class_folder(folder)
        if not files:
            reading.skipped.append((str(folder), f"class folder '{folder.name}' has no images"))
        paths += files
        labels += [label] * len(files)
    good, channels = reading.scan_images(paths)
    return Part({"path": path_column([paths[i] for i in good]), "label": np.asarray(labels, np.int32)[good]},
                classes, decode=file_decoder(channels))


def _image_and_mask_folders(root, reading: Reading) -> Part:
    import numpy as np
    images_dir, masks_dir = root / "images", root / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder\n  hint: for segmentation put images in {images_dir} and "
                            f"masks (PNG, pixel value = class number) with the same names in {masks_dir}")
    files, strays = image_entries(images_dir)
    for stray, reason in strays:
        reading.bad(stray, reason, "remove it, or set data.on_bad: skip to leave such entries out")
    if not files:
        raise DataError(f"{images_dir}: has no images ({', '.join(IMAGE_SUFFIXES)})")
    masks_by_stem = {}
    for mask in image_files(masks_dir):
        masks_by_stem.setdefault(Path(mask).stem, mask)
    paths, mask_paths = [], []
    for file in files:
        mask = masks_by_stem.get(Path(file).stem)
        if mask is None:
            reading.bad(file, f"has no mask in {masks_dir} (looked for {Path(file).stem}.png)")
            continue
        paths.append(file)
        mask_paths.append(mask)
    good, channels = reading.scan_images(paths)
    paths, mask_paths = [paths[i] for i in good], [mask_paths[i] for i in good]
    masks, keep = [], []
    for i, mask_path in enumerate(mask_paths):
        mask = reading.read_mask(mask_path)
        if mask is not None:
            masks.append(mask)
            keep.append(i)
    paths = [paths[i] for i in keep]
    if not paths:
        raise DataError(f"{root}: no usable image and mask pairs")
    return Part({"path": path_column(paths), "label": np.stack(masks)},
                ["background"] + [f"class_{i}" for i in range(1, reading.labels)], decode=file_decoder(channels))


def pack(location, size, data_dir=None, split="train") -> Packing:
    """Each image file of each class folder (unreadable ones left out and listed), stored as
    it is, or as a PNG resized to `size`."""
    from PIL import Image
    source = Path(location)
    if not source.is_dir():
        raise DataError(f"{source}: no such folder or .npz file")
    folders = class_folders(source)
    if not folders:
        raise DataError(f"{source}: has no class sub-folders")
    items, skipped = [], []
    for label, folder in enumerate(folders):
        files, strays = image_entries(folder)
        skipped += strays
        for path in files:
            channels, dimensions, reason = image_info(path)
            if reason is None and dimensions is not None and dimensions[0] * dimensions[1] > MAX_PIXELS:
                reason = too_many_pixels(dimensions, MAX_PIXELS)
            if reason is not None:
                skipped.append((path, reason))
                continue

            def encoded(path=path, label=label, channels=channels):
                if size is None:
                    return Path(path).read_bytes(), label, channels
                with Image.open(path) as image:
                    return png_bytes(image.convert("RGB" if channels >= 3 else "L"), size), label, min(channels, 3)
            items.append(encoded)
    return Packing([p.name for p in folders], len(items), items=items, skipped=skipped)


KIND = SourceKind("directory", example="data/flowers", read=read, classes=classes, problems=problems, takes_path=True,
                  where=written_or_path, pack=pack, origin=origin, labels_from_folders=True)
