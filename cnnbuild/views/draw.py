"""Spec → picture: the architecture as SVG or PNG, with every tensor's shape on its edge.

The picture reads top to bottom and comes from the spec's structure plus the static
report's shapes (no TensorFlow): inception branches side by side, residual shortcuts as
arcs on the right, `inputs:` / `with:` merges (U-Net skips) as arcs on the left, blocks
and repeats framed with their name. Consecutive layers that would be drawn identically
(ResNet's repeated bottlenecks, VGG's conv pairs) are drawn once with a count, so ResNet-50
and GoogLeNet stay readable.

Layout makes a list of shapes in pixels (`Canvas`); `to_svg` writes them as text and
`to_png` paints the same shapes with matplotlib's Agg renderer, so both files agree.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from ..errors import UsageError

# Sizes in pixels (SVG user units; the PNG scales them).
TITLE_SIZE = 12      # a layer's first line
TEXT_SIZE = 10       # its second line, edge labels, frame labels
GAP = 26             # vertical room between two layers; the edge's shape label sits in it
SPLIT = 16           # room under a fork before the branches start
FAN_IN = 34          # room above a merge where branches converge
BRANCH_GAP = 18      # horizontal room between inception branches
LANE = 14            # spacing of the arcs of `inputs:` / `with:` edges
FRAME_PAD = 10       # inside a block's or repeat's frame
FRAME_LABEL = 22     # the frame's label row
BOX_PAD = 10         # text to box border
BOX_MIN_WIDTH = 130  # keeps the column steady and leaves room for edge labels
MARGIN = 24
ARROW = 6

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

# Fill and stroke by kind family.
STYLES = {
    "conv": ("#dbeafe", "#2563eb"),
    "pool": ("#dcfce7", "#16a34a"),
    "dense": ("#ffedd5", "#ea580c"),
    "merge": ("#f3e8ff", "#9333ea"),
    "plain": ("#f1f5f9", "#64748b"),
    "shape": ("#fef9c3", "#ca8a04"),
    "io": ("#e2e8f0", "#334155"),
}
FAMILY = {
    "conv": "conv", "depthwise_conv": "conv", "separable_conv": "conv", "conv_transpose": "conv",
    "max_pool": "pool", "avg_pool": "pool", "sum_pool": "pool", "global_avg_pool": "pool",
    "global_max_pool": "pool", "max_unpool": "pool",
    "dense": "dense", "maxout": "dense",
    "concat": "merge", "add": "merge", "multiply": "merge", "inception": "merge", "residual": "merge",
    "flatten": "shape", "reshape": "shape", "pad": "shape", "crop": "shape", "upsample": "shape",
}
EDGE = "#475569"
LABEL = "#1e40af"     # shape labels on edges
SKIP = "#9333ea"      # residual shortcuts
CROSS = "#c2410c"     # inputs: / with: edges
ERROR = "#dc2626"
FRAME_STROKE = "#94a3b8"
FRAME_FILLS = ("#f8fafc", "#eef2f7")   # alternating with nesting depth
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"


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


def count_text(n: int) -> str:
    """A count in three digits.

    >>> count_text(9472), count_text(25_610_152), count_text(280)
    ('9.5K', '25.6M', '280')
    """
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


# --- shapes on the canvas ---------------------------------------------------------------

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
    """Marks the shapes of one drawn layer in the SVG (`<g class="layer">`)."""
    names: tuple
    kind: str
    tooltip: str
    end: bool = False


class Canvas:
    def __init__(self):
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
        self.add(Text(x + 5, y, shape_text(shape), TEXT_SIZE, LABEL))


def rounded(points, radius=10.0) -> list:
    """Path steps along a polyline of axis-parallel segments, corners rounded."""
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


# --- elements: measured when made, placed later --------------------------------------------
# Each element has width, height and `axis`, the x (from its left) where the flow enters at
# the top and leaves at the bottom; `output` is the shape leaving it; `names` every layer
# name inside it; `signature` is equal for elements drawn identically (None: never merged).

class Element:
    width = height = axis = 0.0
    output = None
    names: set
    signature = None
    in_port = out_port = (0.0, 0.0)   # where inputs: / with: arcs enter and leave, set by place()
    entry_names: dict = {}            # names meaning this element's input (`input` inside it) → shape
    forks = False                     # starts with a fork dot (no arrowhead into it)
    own: tuple = ()                   # the layers it stands for itself (an SVG group's data-layers)

    def place(self, x, y, canvas):
        raise NotImplementedError

    def place_at(self, x, y, canvas):
        self.place(x, y, canvas)
        for name, shape in self.entry_names.items():
            canvas.anchors[name] = Point(x + self.axis, y, shape)


def name_span(shown) -> str:
    """The names of layers drawn as one: 'conv2_block2 … conv2_block3'."""
    if not shown:
        return ""
    return shown[0] if len(set(shown)) == 1 else f"{shown[0]} … {shown[-1]}"


class Stackable(Element):
    """An element that may stand for `count` identical ones, drawn as a stack: a layer's box
    or a frame. It keeps the layer names it stands for in `names` and, in order, `order`;
    `shown` are the names the spec gave them; `_measure()` sizes it for its `count`."""

    def _measure(self):
        raise NotImplementedError

    def absorb(self, other):
        """Take in an identical element drawn in this one's place."""
        self.names |= other.names
        self.order += [n for n in getattr(other, "order", ()) if n not in self.order]
        self.shown += getattr(other, "shown", [])

    def repeated(self, count, names=()):
        """Stand for `count` of itself (and for the layers `names` too)."""
        self.count = count
        self.order += [n for n in names if n not in self.names]
        self.names |= set(names)
        self._measure()
        return self


class Box(Stackable):
    """One layer (or `count` identical ones in a row). `shown`: the names the spec gave them."""

    def __init__(self, title, detail, family, names, kind, tooltip, output, inputs=(), error=False, shown="",
                 params=""):
        self.title, self.family, self.kind, self.tooltip = title, family, kind, tooltip
        self.names, self.output, self.inputs, self.error = set(names), output, inputs, error
        self.order, self.shown, self.parts, self.params = list(names), [shown] if shown else [], detail, params
        self.count = 1
        self.signature = ("box", title, detail, params, tuple(inputs), output)
        self._measure()

    @property
    def heading(self):
        return f"{self.count}× {self.title}" if self.count > 1 else self.title

    @property
    def detail(self):
        params = self.params + (" each" if self.params and self.count > 1 else "")
        return " · ".join(p for p in (name_span(self.shown), self.parts, params) if p)

    def _measure(self):
        wide = max(text_width(self.heading, TITLE_SIZE, bold=True), text_width(self.detail, TEXT_SIZE))
        self.width = max(BOX_MIN_WIDTH, wide + 2 * BOX_PAD) + (4 if self.count > 1 else 0)
        self.height = 36 if self.detail else 24
        self.axis = self.width / 2

    def place(self, x, y, canvas):
        fill, stroke = STYLES[self.family]
        stroke = ERROR if self.error else stroke
        canvas.add(Group(tuple(self.order), self.kind, self.tooltip))
        w = self.width - (4 if self.count > 1 else 0)
        if self.count > 1:   # a stack of cards
            canvas.add(Rect(x + 4, y + 4, w, self.height - 4, fill, stroke, 1.0))
            canvas.add(Rect(x + 2, y + 2, w, self.height - 4, fill, stroke, 1.0))
        h = self.height - (4 if self.count > 1 else 0)
        canvas.add(Rect(x, y, w, h, fill, stroke, 2.0 if self.error else 1.2))
        title = self.heading
        cx = x + w / 2
        if self.detail:
            canvas.add(Text(cx, y + 12, title, TITLE_SIZE, anchor="middle", bold=True))
            canvas.add(Text(cx, y + 26, self.detail, TEXT_SIZE, "#475569", anchor="middle"))
        else:
            canvas.add(Text(cx, y + h / 2, title, TITLE_SIZE, anchor="middle", bold=True))
        canvas.add(Group((), "", "", end=True))
        self.in_port, self.out_port = (x, y + h * 0.4), (x, y + h * 0.6)
        for name in self.names:
            canvas.anchors[name] = self


class Seq(Element):
    """Elements one below the other. links[i]: item i reads item i − 1's output.
    cross: (source name, item index, dashed) for inputs read from elsewhere."""

    def __init__(self, items, links, cross):
        self.items, self.links, self.cross = items, links, cross
        self.names = set().union(*(i.names for i in items)) if items else set()
        self.output = items[-1].output if items else None
        self.forks = bool(items) and items[0].forks
        # Lanes for the cross arcs: short arcs nearest the column, so nested arcs do not cross.
        spans = []
        for source, target, dashed in cross:
            start = next((j for j, item in enumerate(items[:target]) if source in item.names), -1)
            spans.append((target - start, start, target, source, dashed))
        self.lanes, taken = [], []
        for _, start, target, source, dashed in sorted(spans):
            lane = 1
            while any(l == lane and s < target and start < t for s, t, l in taken):
                lane += 1
            taken.append((start, target, lane))
            self.lanes.append((source, target, lane, dashed))
        # lanes, plus room for half a shape label centred on the outermost one
        margin = LANE * max((l for _, _, l in taken), default=0) + (30 if taken else 0)
        if not items:   # an empty inception branch passes its input through
            self.width, self.axis, self.height = 40.0, 20.0, 0.0
            self.signature = ("seq",)
            return
        self.axis = margin + max(i.axis for i in items)
        self.width = self.axis + max(i.width - i.axis for i in items)
        self.height = sum(i.height for i in items) + GAP * (len(items) - 1)
        parts = [i.signature for i in items]
        self.signature = None if None in parts else ("seq", tuple(parts), tuple(links),
                                                      tuple((t, l, d) for _, t, l, d in self.lanes))

    def place(self, x, y, canvas):
        axis = x + self.axis
        top = y
        for i, item in enumerate(self.items):
            if i:
                if self.links[i]:
                    canvas.arrow([("M", axis, top - GAP), ("L", axis, top)], head=not item.forks)
                    canvas.label(axis, top - GAP / 2, self.items[i - 1].output)
            item.place_at(axis - item.axis, top, canvas)
            top += item.height + GAP
        for source, target, lane, dashed in self.lanes:
            canvas.cross.append((source, self.items[target], x + self.axis - max(i.axis for i in self.items) - LANE * lane,
                                 dashed))
        if self.items:
            self.in_port, self.out_port = self.items[0].in_port, self.items[-1].out_port


class Fork(Element):
    """Inception: branches side by side from one input, joined by a concat box."""

    forks = True

    def __init__(self, branches, merge, names, tooltip, input_shape):
        self.branches, self.merge, self.tooltip, self.input_shape = branches, merge, tooltip, input_shape
        self.own = tuple(names)
        self.names = set(names).union(merge.names, *(b.names for b in branches))
        self.output = merge.output
        self.row_width = sum(b.width for b in branches) + BRANCH_GAP * (len(branches) - 1)
        self.width = max(self.row_width, merge.width)
        self.axis = self.width / 2
        self.height = SPLIT + max(b.height for b in branches) + FAN_IN + merge.height
        parts = [b.signature for b in branches]
        self.signature = None if None in parts else ("fork", tuple(parts), merge.signature)

    def place(self, x, y, canvas):
        canvas.add(Group(self.own, "inception", self.tooltip))
        axis = x + self.axis
        tallest = max(b.height for b in self.branches)
        join = y + SPLIT + tallest + FAN_IN
        left = x + (self.width - self.row_width) / 2
        canvas.add(Circle(axis, y + 3, 3, EDGE))
        for branch in self.branches:
            bx = left + branch.axis
            top, bottom = y + SPLIT, y + SPLIT + branch.height
            branch.place_at(left, top, canvas)
            fan_out = [("M", axis, y + 3), ("C", axis, y + SPLIT * 0.6, bx, y + SPLIT * 0.4, bx, top)]
            if branch.items:
                canvas.arrow(fan_out)
            else:
                canvas.add(Curve(fan_out, EDGE))
            straight = y + SPLIT + tallest + 14
            canvas.arrow([("M", bx, bottom), ("L", bx, straight),
                          ("C", bx, join - 6, axis, straight + 6, axis, join)])
            canvas.label(bx, bottom + 9, branch.output if branch.items else self.input_shape)
            left += branch.width + BRANCH_GAP
        self.merge.place_at(axis - self.merge.axis, join, canvas)
        canvas.add(Group((), "", "", end=True))
        self.in_port, self.out_port = (axis, y), self.merge.out_port
        for name in self.names - self.merge.names:
            canvas.anchors.setdefault(name, self)


class Skip(Element):
    """Residual: the body in the column, the shortcut as an arc on the right (through its
    layers when it has some), joined by an add box."""

    forks = True

    def __init__(self, body, shortcut, merge, names, tooltip):
        self.body, self.shortcut, self.merge, self.tooltip = body, shortcut, merge, tooltip
        self.own = tuple(names)
        self.names = set(names).union(body.names, merge.names, shortcut.names if shortcut else ())
        self.output = merge.output
        self.axis = max(body.axis, merge.axis)
        right = max(body.width - body.axis, merge.width - merge.axis)
        self.lane = self.axis + right + (16 + shortcut.axis if shortcut else 18)
        self.width = self.lane + (shortcut.width - shortcut.axis if shortcut else 4)
        self.height = SPLIT + body.height + GAP + merge.height
        parts = [body.signature, merge.signature, shortcut.signature if shortcut else ()]
        self.signature = None if None in parts else ("skip", *parts)

    def place(self, x, y, canvas):
        canvas.add(Group(self.own, "residual", self.tooltip))
        axis, lane = x + self.axis, x + self.lane
        fork = y + 4
        canvas.add(Circle(axis, fork, 3, EDGE))
        canvas.arrow([("M", axis, y), ("L", axis, y + SPLIT)])
        self.body.place_at(axis - self.body.axis, y + SPLIT, canvas)
        merge_y = y + SPLIT + self.body.height + GAP
        canvas.arrow([("M", axis, merge_y - GAP), ("L", axis, merge_y)])
        canvas.label(axis, merge_y - GAP / 2, self.body.output)
        self.merge.place_at(axis - self.merge.axis, merge_y, canvas)
        end = (axis - self.merge.axis + self.merge.width, merge_y + self.merge.height / 2)
        if self.shortcut is None:
            canvas.arrow(rounded([(axis, fork), (lane, fork), (lane, end[1]), end], 14), SKIP, line=1.6)
        else:
            top = y + SPLIT + (self.body.height - self.shortcut.height) / 2
            canvas.arrow(rounded([(axis, fork), (lane, fork), (lane, top)], 14), SKIP, line=1.6)
            self.shortcut.place_at(lane - self.shortcut.axis, top, canvas)
            canvas.arrow(rounded([(lane, top + self.shortcut.height), (lane, end[1]), end], 14), SKIP, line=1.6)
        canvas.add(Group((), "", "", end=True))
        self.in_port, self.out_port = (axis, y), self.merge.out_port
        for name in self.names - self.merge.names:
            canvas.anchors.setdefault(name, self)


class Frame(Stackable):
    """A block use, a repeat, or identical layers drawn once: a labelled frame around them."""

    def __init__(self, inner, label, names, kind, tooltip, depth=0, shown=""):
        self.inner, self.label, self.kind, self.tooltip, self.depth = inner, label, kind, tooltip, depth
        self.names = set(names) | inner.names
        self.order = list(names)
        self.shown = [shown] if shown else []
        self.output = inner.output
        self.count = 1
        self.signature = None if inner.signature is None else ("frame", label, inner.signature)
        self._measure()

    @property
    def heading(self):
        text = " · ".join(p for p in (name_span(self.shown), self.label) if p)
        return f"{self.count}× {text}".rstrip() if self.count > 1 else text

    def _measure(self):
        self.axis = FRAME_PAD + self.inner.axis
        label = self.axis + 8 + text_width(self.heading, TEXT_SIZE, bold=True) + FRAME_PAD
        self.width = max(self.inner.width + 2 * FRAME_PAD, label) + (6 if self.count > 1 else 0)
        self.height = FRAME_LABEL + self.inner.height + FRAME_PAD + (6 if self.count > 1 else 0)

    def place(self, x, y, canvas):
        canvas.add(Group(tuple(self.order), self.kind, self.tooltip))
        fill = FRAME_FILLS[self.depth % 2]
        width, height = self.width, self.height
        if self.count > 1:   # a stack of frames
            width, height = width - 6, height - 6
            canvas.add(Rect(x + 6, y + 6, width, height, fill, FRAME_STROKE, 1.0, 8, dashed=True))
            canvas.add(Rect(x + 3, y + 3, width, height, fill, FRAME_STROKE, 1.0, 8, dashed=True))
        canvas.add(Rect(x, y, width, height, fill, FRAME_STROKE, 1.0, 8, dashed=True))
        axis = x + self.axis
        canvas.add(Text(axis + 8, y + FRAME_LABEL / 2, self.heading, TEXT_SIZE, "#334155", bold=True))
        if self.inner.height:
            canvas.arrow([("M", axis, y), ("L", axis, y + FRAME_LABEL)], head=not self.inner.forks)
            canvas.add(Curve([("M", axis, y + FRAME_LABEL + self.inner.height), ("L", axis, y + height)], EDGE))
        self.inner.place_at(x + FRAME_PAD, y + FRAME_LABEL, canvas)
        canvas.add(Group((), "", "", end=True))
        self.in_port, self.out_port = (x, y + 12), (x, y + height - 10)
        for name in self.names:
            canvas.anchors.setdefault(name, self)


class Point(Element):
    """A composite's input, where `input` inside it leads."""

    def __init__(self, x, y, output):
        self.in_port = self.out_port = (x, y)
        self.output = output
        self.names = set()


# --- spec + report → elements -----------------------------------------------------------------

class _Builder:
    def __init__(self, report):
        self.rows = {row.name: row for row in report.rows}
        # layers an error names ("conv 'conv_3': …", the report's wording), drawn in red
        self.failed = {m.group(1) for p in report.errors for m in [re.match(r"\S+ '([^']+)': ", p.message)] if m}
        self.depth = 0   # frame nesting, for alternating fills
        self.prefix = ""  # the enclosing composite's name: its children's names start with it

    def row(self, name):
        return self.rows.get(name)

    def sequence(self, layers, entry, head=None, tail=None) -> Seq:
        """The layers of one scope; `entry` is the name its first layer's `previous` means.
        A layer drawn exactly like the one before it joins it as a count."""
        runs = [[head, 1]] if head is not None else []   # [element, how many in a row]
        links, cross, previous = [False] * len(runs), [], entry
        outer, self.prefix = self.prefix, entry.removesuffix("input").removesuffix("_")
        for layer in layers:
            element = self.element(layer)
            reads = layer.inputs or ("",)
            sources = [n for n in reads if n not in ("", previous)]
            follows = len(sources) < len(reads)
            # names an argument points at (max_unpool's pool): drawn dashed
            refs = [getattr(layer.args, ref) for ref in getattr(layer.args, "refs", ())]
            previous = layer.name
            if (runs and follows and not sources and not refs and element.signature is not None
                    and runs[-1][0].signature == element.signature):
                self.absorb(runs[-1][0], element)
                runs[-1][1] += 1
                continue
            runs.append([element, 1])
            links.append(follows)
            cross += [(n, len(runs) - 1, False) for n in sources] + [(n, len(runs) - 1, True) for n in refs]
        self.prefix = outer
        items = [self.counted(element, count) for element, count in runs]
        if tail is not None:
            items.append(tail)
            links.append(True)
        return Seq(items, links, cross)

    @staticmethod
    def absorb(element, other):
        if isinstance(element, Stackable):
            element.absorb(other)
        else:
            element.names |= other.names
            element.own = (*element.own, *getattr(other, "own", ()))

    def counted(self, element, count):
        """`element` standing for `count` identical elements in a row."""
        if count == 1:
            return element
        if isinstance(element, Box):
            return element.repeated(count)
        if isinstance(element, Frame):
            return element.repeated(element.count * count)
        return Frame(element, "", element.own, "group", "", self.depth + 1).repeated(count)

    def element(self, layer) -> Element:
        element = self._element(layer)
        if layer.args.children():
            row = self.row(layer.name)
            element.entry_names = {f"{layer.name}_input": row.inputs[0] if row else None}
            element.names |= set(element.entry_names)
        return element

    def _element(self, layer) -> Element:
        row = self.row(layer.name)
        kind = layer.kind
        args = layer.args
        tooltip = self.tooltip(layer, row)
        if kind == "inception":
            branches = [self.sequence(branch, f"{layer.name}_input") for branch in args.branches]
            merge = Box("concat", row.rule if row else "", "merge", (), "concat", tooltip, row.output if row else None,
                        error=layer.name in self.failed)
            return Fork(branches, merge, [layer.name], tooltip, row.inputs[0] if row else None)
        if kind == "residual":
            body = self.sequence(args.body, f"{layer.name}_input")
            shortcut = None
            if isinstance(args.shortcut, tuple):
                shortcut = self.sequence(args.shortcut, f"{layer.name}_input")
            elif args.shortcut == "auto" and self.row(f"{layer.name}_shortcut"):
                shortcut = Seq([self.projection(self.row(f"{layer.name}_shortcut"))], [False], [])
            detail = args.activation if args.activation not in (None, "linear") else ""
            merge = Box("add", detail, "merge", (), "add", tooltip, row.output if row else None,
                        error=layer.name in self.failed)
            return Skip(body, shortcut, merge, [layer.name], tooltip)
        if kind == "repeat":
            self.depth += 1
            copies = []
            for i, copy in enumerate(args.copies):
                entry = f"{layer.name}_{i + 1}_input"
                seq = self.sequence(copy, entry)
                element = seq.items[0] if len(seq.items) == 1 else seq
                first_row = self.row(copy[0].name) if copy else None
                element.entry_names = {**element.entry_names, entry: first_row.inputs[0] if first_row else None}
                element.names.add(entry)
                copies.append(element)
            self.depth -= 1
            if all(c.signature is not None and c.signature == copies[0].signature for c in copies):
                # every repetition looks the same: draw one, with the count
                first = copies[0]
                for c in copies[1:]:
                    self.absorb(first, c)
                if isinstance(first, (Box, Frame)):
                    return first.repeated(first.count * args.times, [layer.name])
                return Frame(first, f"repeat ×{args.times}", [layer.name], "repeat", tooltip, self.depth + 1)
            runs = []
            for c in copies:
                if runs and c.signature is not None and c.signature == runs[-1][0].signature:
                    self.absorb(runs[-1][0], c)
                    runs[-1][1] += 1
                else:
                    runs.append([c, 1])
            self.depth += 1
            items = [self.counted(c, count) for c, count in runs]
            self.depth -= 1
            inner = Seq(items, [True] * len(items), [])
            return Frame(inner, f"repeat ×{args.times}", [layer.name], "repeat", tooltip, self.depth + 1)
        if hasattr(args, "block"):
            self.depth += 1
            inner = self.sequence(args.layers, f"{layer.name}_input")
            self.depth -= 1
            values = ", ".join(f"{k} {v}" for k, v in args.values)
            label = " · ".join(p for p in (args.block, values if len(values) <= 40 else "") if p)
            return Frame(inner, label, [layer.name], args.block, tooltip, self.depth + 1, user_name(layer, self.prefix))
        title, detail, params = describe(args, row, layer.trainable)
        if args.children():   # another composite (a backbone read from a spec): its layers in a frame
            self.depth += 1
            parts = [self.sequence(children, f"{layer.name}_input") for _, children in args.children()]
            self.depth -= 1
            inner = parts[0] if len(parts) == 1 else Seq(parts, [True] * len(parts), [])
            label = " · ".join(p for p in (title, detail, params) if p)
            return Frame(inner, label, [layer.name], kind, tooltip, self.depth + 1, user_name(layer, self.prefix))
        return Box(title, detail, FAMILY.get(kind, "plain"), [layer.name], kind, tooltip,
                   row.output if row and row.output else None, tuple(row.inputs) if row else (),
                   error=layer.name in self.failed,
                   shown=user_name(layer, self.prefix), params=params)

    def projection(self, row):
        stride = max(1, round(row.inputs[0][0] / row.output[0])) if row.output and len(row.output) == 3 else 1
        title = f"conv 1×1{'/' + str(stride) if stride > 1 else ''}, {row.output[-1] if row.output else '?'}"
        detail = "projection · batchnorm" if row.non_trainable else "projection"
        return Box(title, detail, "conv", [row.name], "conv", f"{row.name}: projection shortcut\n{row.rule}", row.output,
                   params=f"{count_text(row.params)} params")

    def tooltip(self, layer, row):
        text = f"{layer.name} ({layer.kind}) at line {layer.where.line}"
        if row and row.output:
            ins = " + ".join(shape_text(s) for s in row.inputs)
            text += f"\n{ins} → {shape_text(row.output)}\n{row.rule}\nparams {row.params:,}, receptive field " \
                    f"{shape_text(row.receptive_field)}"
        return text


def user_name(layer, prefix) -> str:
    """The name the spec gave the layer in its scope ('enc1'), or '' for a generated one
    ('conv_3'). Names inside a composite carry its name as `prefix`."""
    local = layer.name[len(prefix) + 1:] if prefix and layer.name.startswith(prefix + "_") else layer.name
    return "" if re.fullmatch(rf"{re.escape(layer.kind)}_\d+", local) else local


def _pair(pair) -> str:
    return f"{pair[0]}×{pair[1]}"


def _stride(stride) -> str:
    if stride is None or tuple(stride) == (1, 1):
        return ""
    return f"/{stride[0]}" if stride[0] == stride[1] else f"/{stride[0]}×{stride[1]}"


def describe(args, row, trainable=True) -> tuple[str, str, str]:
    """A layer's title (its kind with the numbers that matter), its details (batchnorm,
    activation) and its parameter count."""
    kind = args.kind
    title = kind
    if kind in ("conv", "depthwise_conv", "separable_conv", "conv_transpose"):
        title = f"{kind} {_pair(args.kernel)}{_stride(args.stride)}"
        if getattr(args, "filters", None):
            title += f", {args.filters}"
        if tuple(args.dilation) != (1, 1):
            title += f", dilation {_pair(args.dilation)}"
        if getattr(args, "groups", 1) != 1:
            title += f", groups {args.groups}"
        if getattr(args, "multiplier", 1) != 1:
            title += f", ×{args.multiplier}"
    elif kind in ("max_pool", "avg_pool", "sum_pool"):
        title = f"{kind} {_pair(args.size)}{_stride(args.strides)}"
    elif kind == "upsample":
        title = f"upsample ×{args.size[0]}" if args.size[0] == args.size[1] else f"upsample ×{_pair(args.size)}"
    elif kind == "dense":
        title = f"dense {args.units}"
    elif kind == "dropout":
        title = f"dropout {args.rate:g}" + (" spatial" if args.spatial else "")
    elif kind == "activation":
        title = args.function
    elif kind == "reshape":
        title = f"reshape {shape_text(args.shape)}"
    elif kind == "maxout":
        title = f"maxout {args.pieces}"
    elif kind == "max_unpool":
        title = f"max_unpool ← {args.pool}"
    elif kind == "backbone":
        title = f"backbone {args.application or Path(args.spec).name}"
    parts = []
    if getattr(args, "batchnorm", False):
        parts.append("batchnorm")
    activation = getattr(args, "activation", None)
    if activation and activation != "linear":
        parts.append(activation)
    if FAMILY.get(kind) == "merge" and row and row.output:
        parts.append(row.rule)
    freeze = getattr(args, "freeze", False)   # a backbone's
    if not trainable or freeze is True:
        parts.append("frozen")
    elif freeze:
        parts.append(f"first {freeze} frozen")
    return title, " · ".join(parts), f"{count_text(row.params)} params" if row and row.params else ""


# --- the whole picture --------------------------------------------------------------------------

def layout(spec, report) -> tuple[Canvas, float, float]:
    """Place every element; returns the canvas and the picture's width and height."""
    builder = _Builder(report)
    head = Box("input", "", "io", ["input"], "input", f"input {shape_text(spec.input)}", tuple(spec.input))
    tail = Box("output", "", "io", [], "output", "the model's output", None)
    column = builder.sequence(spec.layers, "input", head=head, tail=tail)
    canvas = Canvas()
    title = f"{spec.name}"
    if report.valid:
        summary = (f"{shape_text(spec.input)} → {shape_text(report.output)} · {report.params:,} parameters · "
                   f"{count_text(report.macs)} multiply-adds")
    else:
        summary = f"invalid: {len(report.errors)} error{'s' * (len(report.errors) != 1)} (see cnnbuild check); " \
                  f"layers in red"
    header = 44
    width = max(column.width, text_width(title, 16, True), text_width(summary, 11)) + 2 * MARGIN
    height = header + column.height + 2 * MARGIN
    canvas.add(Rect(0, 0, width, height, "#ffffff", "#ffffff", 0, 0))
    canvas.add(Text(MARGIN, MARGIN, title, 16, bold=True))
    canvas.add(Text(MARGIN, MARGIN + 20, summary, 11, ERROR if not report.valid else "#475569"))
    x = MARGIN + (width - 2 * MARGIN - column.width) / 2
    column.place(x, MARGIN + header, canvas)
    into: dict = {}   # arcs drawn into each target so far: their labels stack upwards
    for source, target, lane, dashed in canvas.cross:
        element = canvas.anchors.get(source)
        if element is None:
            continue
        (sx, sy), (tx, ty) = element.out_port, target.in_port
        if ty <= sy:
            continue
        stacked = into[id(target)] = into.get(id(target), -1) + 1
        canvas.arrow(rounded([(sx, sy), (lane, sy), (lane, ty), (tx, ty)], 10), CROSS, dashed=dashed, line=1.4)
        # the shape on the lane just above the turn, on a white patch so crossing lanes stay readable
        text = shape_text(element.output)
        y = ty - 18 - 14 * stacked if ty - sy > 44 + 14 * stacked else (sy + ty) / 2
        half = text_width(text, TEXT_SIZE) / 2 + 2
        canvas.add(Rect(lane - half, y - 7, 2 * half, 14, "#ffffff", "#ffffff", 0, 3))
        canvas.add(Text(lane, y, text, TEXT_SIZE, CROSS, anchor="middle"))
    return canvas, width, height


def to_svg(canvas: Canvas, width: float, height: float) -> str:
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


def to_png(canvas: Canvas, width: float, height: float, scale: float = 2.0) -> bytes:
    """Paint the canvas with matplotlib's Agg renderer (no display, no pyplot state)."""
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


def draw(spec, out):
    """Draw `spec` to `out` (.svg or .png); returns the static report the picture shows."""
    from ..check.report import infer
    from ..runfolder import atomic_write
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise UsageError(f"--out {out}: the picture is written as .svg or .png, got '{out.suffix or 'no suffix'}'")
    report = infer(spec)
    canvas, width, height = layout(spec, report)
    data = to_svg(canvas, width, height) if suffix == ".svg" else to_png(canvas, width, height)
    try:
        atomic_write(out, data)
    except OSError as e:   # the user's --out, not a bug: a read-only folder, a file where a folder should be
        raise UsageError(f"--out {out}: cannot write the picture: {e.strerror or e}"
                         f"{f': {e.filename}' if e.filename else ''}; choose a path in a folder you can write to") from None
    return report
