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


def picture(panels: list):
    """The panels one under another, as one RGB PIL image; each panel's maps enlarged by its
    own whole factor, so a late layer's 5×5 maps are drawn as large as an early 28×28's."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default()
    columns = min(COLUMNS, max(len(p.images) for p in panels))
    layouts = []
    for panel in panels:
        h, w = panel.images.shape[1:3]
        scale = max(1, -(-CELL // max(h, w)))
        layouts.append((scale, h * scale, w * scale, -(-len(panel.images) // columns)))
    width = max(max(columns * (cw + GAP) + GAP for _, _, cw, _ in layouts), max(8 + 7 * len(p.header) for p in panels))
    height = sum(HEADER + rows * (TITLE + ch + GAP) + GAP for _, ch, _, rows in layouts)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    top = 0
    for panel, (scale, cell_h, cell_w, rows) in zip(panels, layouts):
        draw.text((GAP, top + 2), plain(panel.header), fill="black", font=font)
        top += HEADER
        for i, (image, title) in enumerate(zip(panel.images, panel.titles)):
            r, k = divmod(i, columns)
            x, y = GAP + k * (cell_w + GAP), top + r * (TITLE + cell_h + GAP)
            draw.text((x, y), title, fill="black", font=font)
            pixels = stretch(image)
            cell = Image.fromarray(pixels, "RGB" if pixels.ndim == 3 else "L")
            canvas.paste(cell.resize((cell_w, cell_h), Image.NEAREST), (x, y + TITLE))
        top += rows * (TITLE + cell_h + GAP) + GAP
    return canvas


def write_panels(panels: list, path) -> None:
    """Write the picture to `path` as PNG, atomically (a temporary sibling, then a rename)."""
    import io

    from ..runfolder import atomic_write
    buffer = io.BytesIO()
    picture(panels).save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())
