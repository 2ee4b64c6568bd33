"""Spec + report → the laid-out canvas.

`Picture` walks the spec's layers and asks each kind how it is drawn (`Kind.drawing`): a
kind answers by calling back one of `box`, `branches`, `skip`, `repeated` or `framed`, and
gives its own title and details (`Kind.label`, `Kind.details`, `Kind.family`). The report
gives the shapes, rules and counts; a layer is drawn red when an error of the report names
it (`Problem.layer`). `layout` then places the elements and draws the `inputs:` / `with:`
arcs between them.
"""
from __future__ import annotations

import re

from ...check.report import count_text
from ...layers.base import part_name
from .canvas import CROSS, ERROR, Canvas, Rect, Text, rounded
from .elements import Box, Element, Fork, Frame, Seq, Skip, Stackable
from .text import TEXT_SIZE, shape_text, text_width

MARGIN = 24          # around the picture, in pixels
HEADER = 44          # the title and the summary line above the column


def entry_name(layer) -> str:
    """The name a composite's `input` has inside it (the checker binds its input so)."""
    return f"{layer.name}_input"


def user_name(layer, prefix) -> str:
    """The name the spec gave the layer in its scope ('enc1'), or '' for a generated one
    ('conv_3'). Names inside a composite carry its name as `prefix`."""
    local = layer.name[len(prefix) + 1:] if prefix and layer.name.startswith(prefix + "_") else layer.name
    return "" if re.fullmatch(rf"{re.escape(layer.kind)}_\d+", local) else local


class Picture:
    """Spec + report → elements; the methods kinds call from `Kind.drawing` make them."""

    def __init__(self, report):
        self.rows = {row.name: row for row in report.rows}
        self.failed = {problem.layer for problem in report.errors if problem.layer}   # drawn in red
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
            refs = [getattr(layer.args, ref) for ref in layer.args.refs]
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
            element.own = (*element.own, *other.own)

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
        element = layer.args.drawing(layer, self)
        if layer.args.children():
            row = self.row(layer.name)
            element.entry_names = {entry_name(layer): row.inputs[0] if row else None}
            element.names |= set(element.entry_names)
        return element

    # --- what a kind's drawing() calls ----------------------------------------------------------

    def box(self, layer) -> Box:
        """One layer as a box: its title, details and parameter count."""
        row = self.row(layer.name)
        title, detail, params = self.describe(layer, row)
        return Box(title, detail, layer.args.family, [layer.name], layer.kind, self.tooltip(layer, row),
                   row.output if row and row.output else None, tuple(row.inputs) if row else (),
                   error=layer.name in self.failed, shown=user_name(layer, self.prefix), params=params)

    def branches(self, layer, branches) -> Fork:
        """Branches side by side from the layer's input, joined by a concat box."""
        row = self.row(layer.name)
        tooltip = self.tooltip(layer, row)
        columns = [self.sequence(branch, entry_name(layer)) for branch in branches]
        merge = Box("concat", row.rule if row else "", "merge", (), "concat", tooltip, row.output if row else None,
                    error=layer.name in self.failed)
        return Fork(columns, merge, [layer.name], layer.kind, tooltip, row.inputs[0] if row else None)

    def skip(self, layer, body, shortcut, activation) -> Skip:
        """`body` in the column and the shortcut beside it, joined by an add box (followed by
        `activation`). `shortcut`: its layers, or None for none of its own: an identity, or
        the projection the checker added for shortcut: auto, which the residual gives for the
        shapes the checker saw (`Residual.shortcut_layers`)."""
        row = self.row(layer.name)
        tooltip = self.tooltip(layer, row)
        column = self.sequence(body, entry_name(layer))
        side = None
        if shortcut is not None:
            side = self.sequence(shortcut, entry_name(layer))
        elif row and row.output and (projected := self.row(part_name(layer.name, "shortcut"))):
            conv = layer.args.shortcut_layers(layer, row.inputs[0], row.output)[0].args
            side = Seq([self.projection_box(conv, projected)], [False], [])
        merge = Box("add", activation if activation not in (None, "linear") else "", "merge", (), "add", tooltip,
                    row.output if row else None, error=layer.name in self.failed)
        return Skip(column, side, merge, [layer.name], layer.kind, tooltip)

    @staticmethod
    def projection_box(conv, row) -> Box:
        """shortcut: auto's 1×1 convolution `conv`; `row`: what the checker found for it."""
        detail = " · ".join(["projection", *conv.details()])
        return Box(conv.label(), detail, conv.family, [row.name], conv.kind, f"{row.name}: projection shortcut\n{row.rule}",
                   row.output, params=f"{count_text(row.params)} params")

    def repeated(self, layer, copies) -> Element:
        """(entry name, layers) for each repetition, in a frame: one copy with the count when
        every copy is drawn alike, else the copies with runs of alike ones counted."""
        row = self.row(layer.name)
        tooltip = self.tooltip(layer, row)
        label = layer.args.label()
        self.depth += 1
        drawn = []
        for entry, copy in copies:
            seq = self.sequence(copy, entry)
            element = seq.items[0] if len(seq.items) == 1 else seq
            first_row = self.row(copy[0].name) if copy else None
            element.entry_names = {**element.entry_names, entry: first_row.inputs[0] if first_row else None}
            element.names.add(entry)
            drawn.append(element)
        self.depth -= 1
        if all(c.signature is not None and c.signature == drawn[0].signature for c in drawn):
            first = drawn[0]
            for c in drawn[1:]:
                self.absorb(first, c)
            if isinstance(first, Stackable):
                return first.repeated(first.count * len(copies), [layer.name])
            return Frame(first, label, [layer.name], layer.kind, tooltip, self.depth + 1)
        runs = []
        for c in drawn:
            if runs and c.signature is not None and c.signature == runs[-1][0].signature:
                self.absorb(runs[-1][0], c)
                runs[-1][1] += 1
            else:
                runs.append([c, 1])
        self.depth += 1
        items = [self.counted(c, count) for c, count in runs]
        self.depth -= 1
        return Frame(Seq(items, [True] * len(items), []), label, [layer.name], layer.kind, tooltip, self.depth + 1)

    def framed(self, layer, parts, counts=True) -> Frame:
        """The layer lists `parts`, one below the other, in a frame labelled with the layer's
        title, and with its details and parameter count unless `counts` is False."""
        row = self.row(layer.name)
        self.depth += 1
        columns = [self.sequence(children, entry_name(layer)) for children in parts]
        self.depth -= 1
        inner = columns[0] if len(columns) == 1 else Seq(columns, [True] * len(columns), [])
        label = " · ".join(p for p in self.describe(layer, row) if p) if counts else layer.args.label()
        return Frame(inner, label, [layer.name], layer.kind, self.tooltip(layer, row), self.depth + 1,
                     user_name(layer, self.prefix))

    # --- text ------------------------------------------------------------------------------------

    @staticmethod
    def describe(layer, row) -> tuple[str, str, str]:
        """A layer's title (its kind with the numbers that matter), its details (batchnorm,
        activation, a merge's rule, freezing) and its parameter count."""
        args = layer.args
        parts = list(args.details())
        if args.merges and row and row.output:
            parts.append(row.rule)
        frozen = "frozen" if not layer.trainable else args.freeze_note()
        if frozen:
            parts.append(frozen)
        return args.label(), " · ".join(parts), f"{count_text(row.params)} params" if row and row.params else ""

    @staticmethod
    def tooltip(layer, row) -> str:
        text = f"{layer.name} ({layer.kind}) at line {layer.where.line}"
        if row and row.output:
            ins = " + ".join(shape_text(s) for s in row.inputs)
            text += f"\n{ins} → {shape_text(row.output)}\n{row.rule}\nparams {row.params:,}, receptive field " \
                    f"{shape_text(row.receptive_field)}"
        return text


def layout(spec, report) -> Canvas:
    """Place every element of the picture of `spec` (its shapes from `report`) on a canvas."""
    picture = Picture(report)
    head = Box("input", "", "io", ["input"], "input", f"input {shape_text(spec.input)}", tuple(spec.input))
    tail = Box("output", "", "io", [], "output", "the model's output", None)
    column = picture.sequence(spec.layers, "input", head=head, tail=tail)
    title = f"{spec.name}"
    if report.valid:
        summary = (f"{shape_text(spec.input)} → {shape_text(report.output)} · {report.params:,} parameters · "
                   f"{count_text(report.macs)} multiply-adds")
    else:
        summary = f"invalid: {len(report.errors)} error{'s' * (len(report.errors) != 1)} (see cnnbuild check); " \
                  f"layers in red"
    width = max(column.width, text_width(title, 16, True), text_width(summary, 11)) + 2 * MARGIN
    height = HEADER + column.height + 2 * MARGIN
    canvas = Canvas(width, height)
    canvas.add(Rect(0, 0, width, height, "#ffffff", "#ffffff", 0, 0))
    canvas.add(Text(MARGIN, MARGIN, title, 16, bold=True))
    canvas.add(Text(MARGIN, MARGIN + 20, summary, 11, ERROR if not report.valid else "#475569"))
    column.place(MARGIN + (width - 2 * MARGIN - column.width) / 2, MARGIN + HEADER, canvas)
    cross_arcs(canvas)
    return canvas


def cross_arcs(canvas):
    """The `inputs:` / `with:` edges, each from its source's placed element to its target's,
    along the lane the column reserved for it, with the shape it carries."""
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

