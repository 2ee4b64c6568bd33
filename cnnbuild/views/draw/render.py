"""The laid-out canvas as a file: `to_svg` writes its shapes as SVG text, `to_png` paints
the same shapes with matplotlib's Agg renderer (imported inside, like every heavy import)."""
from __future__ import annotations

import io
from xml.sax.saxutils import escape, quoteattr

from .canvas import Canvas, Circle, Curve, Group, Polygon, Rect, Text
from .text import CENTRE

FONT = "DejaVu Sans, Verdana, Arial, sans-serif"


def to_svg(canvas: Canvas) -> str:
    """The canvas as an SVG document: a `<g class="layer">` per drawn layer, with its tooltip."""
    width, height = canvas.width, canvas.height
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family={quoteattr(FONT)}>']
    for shape in canvas.shapes:
        if isinstance(shape, Group):
            if shape.end:
                out.append("</g>")
            else:
                out.append(f'<g class="layer" data-layers={quoteattr(" ".join(shape.names))} '
                           f'data-kind={quoteattr(shape.kind)}><title>{escape(shape.tooltip)}</title>')
        elif isinstance(shape, Rect):
            dash = ' stroke-dasharray="5 3"' if shape.dashed else ""
            out.append(f'<rect x="{shape.x:.1f}" y="{shape.y:.1f}" width="{shape.width:.1f}" height="{shape.height:.1f}" '
                       f'rx="{shape.radius:g}" fill="{shape.fill}" stroke="{shape.stroke}" '
                       f'stroke-width="{shape.line:g}"{dash}/>')
        elif isinstance(shape, Curve):
            dash = ' stroke-dasharray="5 3"' if shape.dashed else ""
            d = " ".join(step[0] + " " + " ".join(f"{v:.1f}" for v in step[1:]) for step in shape.steps)
            out.append(f'<path d="{d}" fill="none" stroke="{shape.stroke}" stroke-width="{shape.line:g}"{dash}/>')
        elif isinstance(shape, Polygon):
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in shape.points)
            out.append(f'<polygon points="{points}" fill="{shape.fill}"/>')
        elif isinstance(shape, Circle):
            out.append(f'<circle cx="{shape.x:.1f}" cy="{shape.y:.1f}" r="{shape.radius:g}" fill="{shape.fill}"/>')
        elif isinstance(shape, Text):
            weight = ' font-weight="bold"' if shape.bold else ""
            out.append(f'<text x="{shape.x:.1f}" y="{shape.y + CENTRE * shape.size:.1f}" font-size="{shape.size:g}" '
                       f'fill="{shape.color}" text-anchor="{shape.anchor}"{weight}>{escape(shape.text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


MAX_PIXELS = 30_000   # per side; Agg refuses images wider or taller than 2¹⁶


def to_png(canvas: Canvas, scale: float = 2.0) -> bytes:
    """Paint the canvas with matplotlib's Agg renderer (no display, no pyplot state)."""
    width, height = canvas.width, canvas.height
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle as CirclePatch
    from matplotlib.patches import FancyBboxPatch, PathPatch
    from matplotlib.patches import Polygon as PolygonPatch
    from matplotlib.path import Path as MplPath

    scale = min(scale, MAX_PIXELS / max(width, height))
    # One canvas pixel = one point, so font sizes and line widths carry over unchanged.
    figure = Figure(figsize=(width / 72, height / 72), dpi=72 * scale)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.axis("off")
    codes = {"M": MplPath.MOVETO, "L": MplPath.LINETO}
    for shape in canvas.shapes:
        if isinstance(shape, Rect):
            axes.add_patch(FancyBboxPatch((shape.x, shape.y), shape.width, shape.height,
                                          boxstyle=f"round,pad=0,rounding_size={shape.radius}", facecolor=shape.fill,
                                          edgecolor=shape.stroke, linewidth=shape.line,
                                          linestyle=(0, (5, 3)) if shape.dashed else "-"))
        elif isinstance(shape, Curve):
            vertices, kinds = [], []
            for step in shape.steps:
                if step[0] == "C":
                    vertices += [step[1:3], step[3:5], step[5:7]]
                    kinds += [MplPath.CURVE4] * 3
                else:
                    vertices.append(step[1:3])
                    kinds.append(codes[step[0]])
            axes.add_patch(PathPatch(MplPath(vertices, kinds), fill=False, edgecolor=shape.stroke,
                                     linewidth=shape.line, linestyle=(0, (5, 3)) if shape.dashed else "-"))
        elif isinstance(shape, Polygon):
            axes.add_patch(PolygonPatch(shape.points, closed=True, facecolor=shape.fill, edgecolor="none"))
        elif isinstance(shape, Circle):
            axes.add_patch(CirclePatch((shape.x, shape.y), shape.radius, facecolor=shape.fill, edgecolor="none"))
        elif isinstance(shape, Text):
            axes.text(shape.x, shape.y + CENTRE * shape.size, shape.text, fontsize=shape.size, color=shape.color,
                      ha={"start": "left", "middle": "center", "end": "right"}[shape.anchor], va="baseline",
                      fontweight="bold" if shape.bold else "normal", parse_math=False, family="DejaVu Sans")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72 * scale, facecolor="white")
    return buffer.getvalue()
