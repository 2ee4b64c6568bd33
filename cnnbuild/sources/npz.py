"""`npz`: arrays x [N, h, w(, c)] and y [N] (or masks [N, h, w]) in one file, and
optionally `classes`; checked whole and kept in memory."""
from __future__ import annotations

from pathlib import Path

from .common import Against, DataError, Packing, Part, Reading, SourceKind, not_regular, resolved, written_or_path
from .images import png_bytes


def names(text: str) -> bool:
    """`source: data/train.npz` names an npz file."""
    return text.endswith(".npz")


def problems(source, against: Against) -> list:
    """The file is there."""
    location = resolved(source.location, against.folder)
    reason = not_regular(location)
    return [DataError(f"{location}: {reason}")] if reason else []


def classes(source, folder=None):
    """The names the file stores in its `classes` array (read alone, not the images), or None."""
    import numpy as np
    path = resolved(source.location, folder)
    if not_regular(path):      # a FIFO would block np.load forever: the problems name it
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return [str(c) for c in archive["classes"]] if "classes" in archive.files else None
    except Exception:      # no such file, a damaged one: the reader names the problem
        return None


def read(data, reading: Reading, seed) -> Part:
    """Arrays x [N, h, w(, c)] and y [N] or masks [N, h, w]; optionally `classes`."""
    import numpy as np
    path = Path(data.location)
    reason = not_regular(path)
    if reason:
        raise DataError(f"{path}: {reason}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.keys())
            for key in ("x", "y"):
                if key not in names:
                    raise DataError(f"{path}: has no array '{key}' (it has: {', '.join(names) or 'nothing'})\n"
                                    "  hint: save with np.savez(path, x=images, y=labels)")
            x, y = archive["x"], archive["y"]
            stored_classes = [str(c) for c in archive["classes"]] if "classes" in names else None
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(f"{path}: holds Python objects; cnnbuild reads plain numeric arrays only "
                            "(loaded with allow_pickle=False)") from None
        raise DataError(f"{path}: cannot be read as .npz: {e}") from None
    except Exception as e:   # zipfile.BadZipFile, OSError, EOFError: a damaged file
        raise DataError(f"{path}: cannot be read as .npz: {e}") from None
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or len(x) == 0:
        raise DataError(f"{path}: x must be images [N, height, width] or [N, height, width, channels], "
                        f"got shape {list(x.shape)}")
    reading.check_channels(f"{path}: x", x.shape[-1])
    x = _as_uint8(x, path)
    if len(y) != len(x):
        raise DataError(f"{path}: x has {len(x)} images but y has {len(y)} labels")
    if reading.task == "classification":
        y = y.reshape(len(y), -1)
        if y.shape[1] != 1:
            raise DataError(f"{path}: y must hold one class number per image, got shape {list(y.shape)}")
        y = y[:, 0]
    else:
        if y.ndim == 4 and y.shape[-1] == 1:
            y = y[..., 0]
        if y.ndim != 3:
            raise DataError(f"{path}: for segmentation y must be masks [N, height, width], got shape {list(y.shape)}")
        if y.shape[1:3] != x.shape[1:3]:
            raise DataError(f"{path}: masks are {y.shape[1]}×{y.shape[2]} but images {x.shape[1]}×{x.shape[2]}; "
                            "each mask must match its image")
    if not np.issubdtype(y.dtype, np.integer) and not (np.issubdtype(y.dtype, np.floating) and
                                                       np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        raise DataError(f"{path}: y must hold whole class numbers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    keep = reading.labels_in_range(y, path)
    x, y = x[keep], y[keep]
    if stored_classes is not None:
        reading.classes_must_match(str(path), stored_classes)
        classes = stored_classes
    else:
        classes = [str(i) for i in range(reading.labels)]
    return Part({"image": x, "label": y.astype(np.int32)}, classes)


def _as_uint8(x, path):
    import numpy as np
    if x.dtype == np.uint8:
        return x
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{path}: x must hold numbers 0…255, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise DataError(f"{path}: x holds NaN or infinite values")
    low, high = x.min(), x.max()
    if low < 0 or high > 255:
        raise DataError(f"{path}: x values must be 0…255 (like 8-bit images), got {low}…{high}")
    return np.round(x).astype(np.uint8)


def pack(location, size, data_dir=None, split="train") -> Packing:
    """Each image of x as a PNG (resized to `size` when given), its label from y; classes from
    the file's `classes`, else 0…max(y)."""
    import numpy as np
    from PIL import Image
    with np.load(location, allow_pickle=False) as archive:
        x, y = archive["x"], archive["y"].reshape(-1).astype(np.int64)
        class_names = [str(c) for c in archive["classes"]] if "classes" in archive else \
            [str(i) for i in range(int(y.max()) + 1)]
    x = x[..., None] if x.ndim == 3 else x

    def from_array(i):
        pixels = np.clip(np.round(x[i]), 0, 255).astype(np.uint8)
        return png_bytes(Image.fromarray(pixels.squeeze(-1) if x.shape[-1] == 1 else pixels), size), int(y[i]), x.shape[-1]
    return Packing(class_names, len(x), items=[lambda i=i: from_array(i) for i in range(len(x))])


KIND = SourceKind("npz", example="data/train.npz", read=read, classes=classes, problems=problems, takes_path=True,
                  where=written_or_path, names=names, pack=pack)
