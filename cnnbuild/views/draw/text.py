"""Text metrics and the picture's wording: how wide a label is in DejaVu Sans (so boxes
fit their text without a font library), and how shapes and runs of names are written.
Counts are written as the check table writes them (`check.report.count_text`)."""
from __future__ import annotations

TITLE_SIZE = 12      # a layer's first line, in pixels
TEXT_SIZE = 10       # its second line, edge labels, frame labels

# Advance widths of DejaVu Sans (matplotlib's default font and the SVG's first choice), in
# em, grouped; measured with Pillow from matplotlib's DejaVuSans.ttf. Unlisted: 0.63.
_WIDTHS = {
    0.31: "'ijlIJ ,.·/:;\\|",
    0.39: "ft()[]-!⌈⌉r",
    0.54: "\"*_`szc?Lk",
    0.60: "vxyFPaoTY",
    0.84: "w#+<=>^~×→←−&%OQDGHNMU",
    1.00: "mW@…",
}
_WIDTH = {c: w for w, chars in _WIDTHS.items() for c in chars}
CENTRE = 0.36        # baseline below a line's middle, in em: half DejaVu Sans's cap height (0.73)
BOLD = 1.12          # DejaVu Sans Bold is about 10% wider


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Estimated width in pixels of `text` in DejaVu Sans at `size` pixels.

    >>> round(text_width("conv 3×3", 10))   # DejaVu Sans measures 48.2
    48
    """
    return sum(_WIDTH.get(c, 0.63) for c in text) * size * (BOLD if bold else 1.0)


def shape_text(shape) -> str:
    """The shape as the picture shows it.

    >>> shape_text((28, 28, 6))
    '28×28×6'
    """
    return "×".join(map(str, shape)) if shape else "?"


def name_span(shown) -> str:
    """The names of layers drawn as one: 'conv2_block2 … conv2_block3'.

    >>> name_span(["enc1"]), name_span(["b2", "b3", "b4"]), name_span([])
    ('enc1', 'b2 … b4', '')
    """
    if not shown:
        return ""
    return shown[0] if len(set(shown)) == 1 else f"{shown[0]} … {shown[-1]}"
