"""The picture's elements: a layer's box, a column, inception's fork, a residual's skip,
a frame. Each is measured when made and placed later (`place`), writing shapes in pixels on
the canvas; nothing here knows about specs, reports, SVG or PNG."""
from __future__ import annotations

from .canvas import EDGE, ERROR, FRAME_FILLS, FRAME_STROKE, SKIP, STYLES, Circle, Curve, Group, Rect, Text, rounded
from .text import TEXT_SIZE, TITLE_SIZE, name_span, text_width

# Sizes in pixels (SVG user units; the PNG scales them).
GAP = 26             # vertical room between two layers; the edge's shape label sits in it
SPLIT = 16           # room under a fork before the branches start
FAN_IN = 34          # room above a merge where branches converge
BRANCH_GAP = 18      # horizontal room between inception branches
LANE = 14            # spacing of the arcs of `inputs:` / `with:` edges
FRAME_PAD = 10       # inside a block's or repeat's frame
FRAME_LABEL = 22     # the frame's label row
BOX_PAD = 10         # text to box border
BOX_MIN_WIDTH = 130  # keeps the column steady and leaves room for edge labels

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


class Stackable(Element):
    """An element that may stand for `count` identical ones, drawn as a stack: a layer's box
    or a frame. It keeps the layer names it stands for in `names` and, in order, `order`;
    `shown` are the names the spec gave them; `_measure()` sizes it for its `count`."""

    def _measure(self):
        raise NotImplementedError

    def absorb(self, other):
        """Take in an identical element drawn in this one's place."""
        self.names |= other.names
        self.order += [n for n in other.order if n not in self.order]
        self.shown += other.shown

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

    def __init__(self, branches, merge, names, kind, tooltip, input_shape):
        self.branches, self.merge, self.kind, self.tooltip, self.input_shape = branches, merge, kind, tooltip, input_shape
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
        canvas.add(Group(self.own, self.kind, self.tooltip))
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

    def __init__(self, body, shortcut, merge, names, kind, tooltip):
        self.body, self.shortcut, self.merge, self.kind, self.tooltip = body, shortcut, merge, kind, tooltip
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
        canvas.add(Group(self.own, self.kind, self.tooltip))
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

