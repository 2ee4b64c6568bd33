"""Feature maps and kernels as one labelled PNG (`cnnbuild maps`): a header per layer naming
it and its shape, then its maps in a grid, each titled `layer[index]`.

Each map is stretched to its own range (its minimum black, its maximum white), as seed 002
and 003 print filtered images: what a map shows is where it is large, not its units; a
constant map is drawn mid-grey. Small maps are enlarged by a whole factor (nearest
neighbour) so an 8×8 map stays visible.

    >>> import numpy as np
    >>> stretch(np.array([[0.0, 2.0], [1.0, 2.0]])).tolist()
    [[0, 255], [128, 255]]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CELL = 72        # the smallest side a map is drawn at, in pixels
COLUMNS = 8      # maps per row
TITLE = 12       # pixels of title above each map
HEADER = 18      # pixels of a layer's header line
GAP = 4


@dataclass(frozen=True)
class Panel:
    """One layer's pictures: `images` (N, h, w) or (N, h, w, 3) floats, titled `titles`,
    under the header `header`."""

    header: str
    images: np.ndarray
    titles: tuple


def stretch(image: np.ndarray) -> np.ndarray:
    """Float values → uint8, the minimum at 0 and the maximum at 255 (a constant image: 128)."""
    low, high = float(image.min()), float(image.max())
    if high - low < 1e-12:
        return np.full(image.shape, 128, np.uint8)
    return np.round((image - low) / (high - low) * 255).astype(np.uint8)


def plain(text: str) -> str:
    """The text in the characters PIL's built-in bitmap font has (no '×' or '–' there)."""
    return text.replace("×", "x").replace("–", "-")


def picture(panels: list) -> "Image.Image":
    """The panels one under another, as one RGB PIL image."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default()
    h, w = max(p.images.shape[1] for p in panels), max(p.images.shape[2] for p in panels)
    scale = max(1, -(-CELL // max(h, w)))
    cell_h, cell_w = h * scale, w * scale
    columns = min(COLUMNS, max(len(p.images) for p in panels))
    rows = [-(-len(p.images) // columns) for p in panels]
    width = max(columns * (cell_w + GAP) + GAP, max(8 + 7 * len(p.header) for p in panels))
    height = sum(HEADER + r * (TITLE + cell_h + GAP) + GAP for r in rows)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    top = 0
    for panel, count in zip(panels, rows):
        draw.text((GAP, top + 2), plain(panel.header), fill="black", font=font)
        top += HEADER
        for i, (image, title) in enumerate(zip(panel.images, panel.titles)):
            r, k = divmod(i, columns)
            x, y = GAP + k * (cell_w + GAP), top + r * (TITLE + cell_h + GAP)
            draw.text((x, y), title, fill="black", font=font)
            pixels = stretch(image)
            cell = Image.fromarray(pixels if pixels.ndim == 3 else pixels, "RGB" if pixels.ndim == 3 else "L")
            canvas.paste(cell.resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST), (x, y + TITLE))
        top += count * (TITLE + cell_h + GAP) + GAP
    return canvas


def write_panels(panels: list, path) -> None:
    """Write the picture to `path` as PNG, atomically (a temporary sibling, then a rename)."""
    import io

    from ..runfolder import atomic_write
    buffer = io.BytesIO()
    picture(panels).save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())
