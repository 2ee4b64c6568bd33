"""Spec → picture: the architecture as SVG or PNG, with every tensor's shape on its edge.

The picture reads top to bottom and comes from the spec's structure plus the static
report's shapes (no TensorFlow): inception branches side by side, residual shortcuts as
arcs on the right, `inputs:` / `with:` merges (U-Net skips) as arcs on the left, blocks
and repeats framed with their name. Consecutive layers that would be drawn identically
(ResNet's repeated bottlenecks, VGG's conv pairs) are drawn once with a count, so ResNet-50
and GoogLeNet stay readable.

One way through, a module a step:
  text.py      text metrics (DejaVu Sans widths) and how shapes and names are written
  canvas.py    the laid-out picture: shapes in pixels and their colours
  elements.py  boxes, columns, forks, skips and frames: measured, then placed on the canvas
  picture.py   spec + report → elements (each kind says how it is drawn) → `layout`
  render.py    canvas → SVG text (`to_svg`) or PNG bytes (`to_png`), the same shapes
"""
from __future__ import annotations

from pathlib import Path

from ...errors import UsageError
from .canvas import CROSS, SKIP
from .picture import layout
from .render import to_png, to_svg
from .text import shape_text

__all__ = ["CROSS", "SKIP", "draw", "layout", "shape_text", "to_png", "to_svg"]


def draw(spec, out):
    """Draw `spec` to `out` (.svg or .png); returns the static report the picture shows."""
    from ...check.report import infer
    from ...runfolder import atomic_write
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise UsageError(f"--out {out}: the picture is written as .svg or .png, got '{out.suffix or 'no suffix'}'")
    report = infer(spec)
    canvas = layout(spec, report)
    data = to_svg(canvas) if suffix == ".svg" else to_png(canvas)
    try:
        atomic_write(out, data)
    except OSError as e:   # the user's --out, not a bug: a read-only folder, a file where a folder should be
        raise UsageError(f"--out {out}: cannot write the picture: {e.strerror or e}"
                         f"{f': {e.filename}' if e.filename else ''}; choose a path in a folder you can write to") from None
    return report
