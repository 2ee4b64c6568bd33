"""The laid-out picture: a list of shapes in pixels, with their colours. Layout writes it;
the renderers (render.py) only read it, so the SVG and the PNG show the same shapes."""
from __future__ import annotations

from dataclasses import dataclass

from .text import TEXT_SIZE, shape_text

ARROW = 6            # arrowhead length, in pixels

# Fill and stroke by kind family (Kind.family).
STYLES = {
    "convolution": ("#dbeafe", "#2563eb"),
    "pool": ("#dcfce7", "#16a34a"),
    "fully_connected": ("#ffedd5", "#ea580c"),
    "merge": ("#f3e8ff", "#9333ea"),
    "plain": ("#f1f5f9", "#64748b"),
    "shape": ("#fef9c3", "#ca8a04"),
    "io": ("#e2e8f0", "#334155"),
}
EDGE = "#475569"
LABEL = "#1e40af"     # shape labels on edges
SKIP = "#9333ea"      # residual shortcuts
CROSS = "#c2410c"     # inputs: / with: edges
ERROR = "#dc2626"
FRAME_STROKE = "#94a3b8"
FRAME_FILLS = ("#f8fafc", "#eef2f7")   # alternating with nesting depth


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    stroke: str
    line: float = 1.0
    radius: float = 4.0
    dashed: bool = False


@dataclass
class Curve:
    """A path of ("M", x, y), ("L", x, y) and ("C", x1, y1, x2, y2, x, y) steps."""
    steps: list
    stroke: str
    line: float = 1.2
    dashed: bool = False


@dataclass
class Polygon:
    points: list
    fill: str


@dataclass
class Circle:
    x: float
    y: float
    radius: float
    fill: str


@dataclass
class Text:
    x: float
    y: float           # the middle of the text line
    text: str
    size: float = TEXT_SIZE
    color: str = "#0f172a"
    anchor: str = "start"   # start, middle or end
    bold: bool = False


@dataclass
class Group:
    """Marks the shapes of one drawn layer (the SVG's `<g class="layer">`); `end` closes it."""
    names: tuple
    kind: str
    tooltip: str
    end: bool = False


class Canvas:
    """The picture's shapes in drawing order, `width` × `height` pixels. While layout runs it
    also keeps where each layer was placed, for the `inputs:` / `with:` arcs drawn last."""

    def __init__(self, width: float, height: float):
        self.width, self.height = width, height
        self.shapes: list = []
        self.anchors: dict = {}     # layer name → its placed element (for inputs: / with: edges)
        self.cross: list = []       # (source name, target element, lane x, dashed), drawn last

    def add(self, shape):
        self.shapes.append(shape)

    def arrow(self, steps, color=EDGE, dashed=False, line=1.2, head=True):
        """A path with an arrowhead at its end, pointing along its last step."""
        self.add(Curve(steps, color, line, dashed))
        if not head:
            return
        last = steps[-1]
        x, y = last[-2], last[-1]
        before = steps[-2] if len(steps) > 1 else last
        px, py = (last[3], last[4]) if last[0] == "C" else (before[-2], before[-1])
        dx, dy = x - px, y - py
        length = (dx * dx + dy * dy) ** 0.5 or 1.0
        dx, dy = dx / length, dy / length
        self.add(Polygon([(x, y), (x - ARROW * dx + ARROW * 0.5 * dy, y - ARROW * dy - ARROW * 0.5 * dx),
                          (x - ARROW * dx - ARROW * 0.5 * dy, y - ARROW * dy + ARROW * 0.5 * dx)], color))

    def label(self, x, y, shape):
        """The shape of the tensor on an edge, just right of it."""
        self.add(Text(x + 5, y, shape_text(shape), TEXT_SIZE, LABEL))


def rounded(points, radius=10.0) -> list:
    """Path steps along a polyline of axis-parallel segments, corners rounded.

    >>> rounded([(0, 0), (20, 0), (20, 30)], 5)
    [('M', 0, 0), ('L', 15, 0), ('C', 20, 0, 20, 0, 20, 5), ('L', 20, 30)]
    """
    steps = [("M", *points[0])]
    for (x0, y0), (x1, y1), (x2, y2) in zip(points, points[1:], points[2:]):
        r = min(radius, abs(x1 - x0 + y1 - y0) / 2, abs(x2 - x1 + y2 - y1) / 2)
        ax, ay = x1 - r * _sign(x1 - x0), y1 - r * _sign(y1 - y0)
        bx, by = x1 + r * _sign(x2 - x1), y1 + r * _sign(y2 - y1)
        steps += [("L", ax, ay), ("C", x1, y1, x1, y1, bx, by)]
    steps.append(("L", *points[-1]))
    return steps


def _sign(v):
    return (v > 0) - (v < 0)
