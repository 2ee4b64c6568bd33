"""A grid of images as one PNG: a GAN's samples, one row per class when conditional.

    >>> import numpy as np
    >>> grid(np.zeros((6, 4, 5, 1), np.uint8), columns=3).shape
    (9, 17, 1)
"""
from __future__ import annotations

import io

import numpy as np

GAP = 1          # pixels of background between cells
MIN_CELL = 32    # cells smaller than this are enlarged by a whole factor, so 8×8 digits stay visible


def grid(images: np.ndarray, columns: int, gap: int = GAP, background: int = 0) -> np.ndarray:
    """(N, H, W, C) uint8 images → one (rows·(H+gap)−gap, columns·(W+gap)−gap, C) uint8 image,
    filled row by row; a short last row is left as background."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"grid takes (N, H, W, C) uint8 images, got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    rows = max(1, -(-n // columns))
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, c), background, np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, columns)
        out[r * (h + gap):r * (h + gap) + h, k * (w + gap):k * (w + gap) + w] = image
    return out


def png_bytes(images: np.ndarray, columns: int) -> bytes:
    """The grid as PNG bytes, each cell enlarged (nearest neighbour) to at least MIN_CELL pixels."""
    from PIL import Image
    h = images.shape[1]
    scale = max(1, -(-MIN_CELL // h))
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    picture = grid(images, columns, gap=GAP * scale if scale > 1 else GAP)
    if picture.shape[2] == 1:
        picture = picture[:, :, 0]
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def write_grid(images: np.ndarray, columns: int, path) -> None:
    """Write the grid to `path` as PNG, atomically (a temporary sibling, then a rename)."""
    from ..runfolder import atomic_write
    atomic_write(path, png_bytes(images, columns))
