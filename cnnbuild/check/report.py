"""Spec → Report: every layer's shapes, rule, parameters, multiply-adds and receptive field,
computed without TensorFlow. The report is what `cnnbuild check` prints and what the built
Keras model is tested against."""
from __future__ import annotations

import json
import math
from dataclasses import field
from fractions import Fraction

from ..records import record
from ..layers import shapes
from ..errors import Invalid, Problem
from ..layers import base
from ..layers.base import PROBABILITIES, Tensor  # noqa: F401  (PROBABILITIES: the activations giving probabilities)

BYTES_PER_VALUE = 4   # float32 activations
MAX_PERIOD = 4096     # positions a Span tells apart; beyond (upsampling by thousands) it keeps only the widest


@record(frozen=True)
class Span:
    """Which image rows (or columns) the elements along one axis read: element i reads rows
    lo(i) … hi(i), where lo(i) = (i // period)·step + low[i % period] (hi alike), on an axis
    taken as unbounded (the field is the theoretical one, not cut at the image's edges).

    Through windows and strides one offset suffices (period 1, step = the jump); upsampling
    makes the field depend on the position, and `period` keeps each position's own interval,
    so the receptive field reported is the largest over positions, exactly.

    >>> x = Span.image()
    >>> x.through_window(3, 2, 1).width, x.through_window(3, 2, 1).through_window(3, 1, 1).width   # 3, 3 + 2·2
    (3, 7)
    >>> x.spread(1, (3, 1, 0)).width                 # a 3×3 transposed convolution, stride 1: its 3 taps
    3
    >>> x.through_window(3, 2, 0).spread(2, "bilinear").width     # bilinear ×2 reads 2 elements 2 apart: 3 + 2
    5
    """

    period: int
    step: float
    low: tuple
    high: tuple

    @classmethod
    def image(cls) -> "Span":
        return cls(1, 1, (0,), (0,))

    def lo(self, i: int):
        return (i // self.period) * self.step + self.low[i % self.period]

    def hi(self, i: int):
        return (i // self.period) * self.step + self.high[i % self.period]

    @property
    def width(self):
        return max(h - l + 1 for l, h in zip(self.low, self.high))

    def through_window(self, kernel: int, stride: int, before: int) -> "Span":
        """A window of `kernel` (dilated already) every `stride`, `before` rows of padding first:
        output o reads input o·S − before … o·S − before + F − 1 (lo and hi only grow with i)."""
        period = self.period // math.gcd(self.period, stride)
        step = self.step * period * stride // self.period
        return _bounded(Span(period, step, tuple(self.lo(o * stride - before) for o in range(period)),
                             tuple(self.hi(o * stride - before + kernel - 1) for o in range(period))))

    def spread(self, factor: int, taps) -> "Span":
        """Upsampling by `factor`: output o reads the input elements `taps` names ('nearest':
        o // S; 'bilinear': the two around (o + ½)/S − ½, one when it falls on an element;
        a transposed convolution's (kernel, dilation, before): every i with i·S = o + before − k·D)."""
        period = self.period * factor
        low, high = [], []
        for o in range(period):
            if taps == "nearest":
                reads = [o // factor]
            elif taps == "bilinear":
                x = Fraction(2 * o + 1, 2 * factor) - Fraction(1, 2)
                reads = [math.floor(x)] + ([math.floor(x) + 1] if x.denominator != 1 else [])
            else:
                kernel, dilation, before = taps
                reads = [(o + before - k * dilation) // factor for k in range(kernel)
                         if (o + before - k * dilation) % factor == 0] or [(o + before) // factor]
            low.append(min(self.lo(i) for i in reads))
            high.append(max(self.hi(i) for i in reads))
        return _bounded(Span(period, self.step, tuple(low), tuple(high)))


def _bounded(span: Span) -> Span:
    """A span with at most MAX_PERIOD positions: beyond, one position as wide as the widest."""
    if span.period <= MAX_PERIOD:
        return span
    return Span(1, span.step / span.period, (0,), (span.width - 1,))


def union(spans: list, broadcast: list) -> Span:
    """The span of a merge: each position reads what each input reads there. A broadcast 1×1
    input repeats one element everywhere: it adds its width at each position, aligned with
    the first input's start (it sets no spacing)."""
    period = min(math.lcm(*(s.period for s in spans)), MAX_PERIOD)
    step = max(s.step * period / s.period for s in spans)
    step = int(step) if float(step).is_integer() else step
    low = [min(s.lo(o) for s in spans) for o in range(period)]
    high = [max(s.hi(o) for s in spans) for o in range(period)]
    for extra in broadcast:
        high = [max(h, spans[0].lo(o) + extra - 1) for o, h in enumerate(high)]
    return _bounded(Span(period, step, tuple(low), tuple(high)))
MAX_SIDE = 2**31 - 1  # the largest size of one axis TensorFlow indexes with int32


@record()
class Row:
    path: str
    name: str
    kind: str
    depth: int
    inputs: list
    output: tuple
    rule: str
    params: int
    non_trainable: int
    macs: int
    receptive_field: tuple
    composite: bool = False
    rule_in_full: bool = False   # the kind's rule is a caveat, shown whole under the table (Kind.rule_in_full)

    def to_json(self) -> dict:
        """The row without its children (`children` is filled by `layer_tree`)."""
        return {"path": self.path, "name": self.name, "kind": self.kind, "input": [list(s) for s in self.inputs]
                if len(self.inputs) > 1 else list(self.inputs[0]), "output": list(self.output), "params": self.params,
                "trainable_params": self.params - self.non_trainable, "non_trainable_params": self.non_trainable,
                "macs": self.macs, "rule": self.rule, "receptive_field": list(self.receptive_field), "children": []}


def layer_tree(rows) -> list:
    """The rows as JSON: the top-level layers in order, each composite's layers (recursively)
    in its `children`, with the same keys; other layers have no children."""
    top, open_rows = [], []   # open_rows: (depth, children list) of the composites enclosing the next row
    for row in rows:
        entry = row.to_json()
        while open_rows and open_rows[-1][0] >= row.depth:
            open_rows.pop()
        (open_rows[-1][1] if open_rows else top).append(entry)
        open_rows.append((row.depth, entry["children"]))
    return top


@record()
class Report:
    """What `infer` found. `output` is None when the shapes could not be followed to the end;
    the totals are then unknown. `unparsed` makes the report of a spec that did not parse."""

    name: str | None
    input: tuple | None
    output: tuple | None
    rows: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    params: int = 0
    non_trainable_params: int = 0
    macs: int = 0
    activation_bytes: int = 0
    output_activation: str | None = None   # what the network ends in: 'softmax', 'tanh', … or None (linear)

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def ends_in_probabilities(self) -> bool:
        """Does the network output probabilities (softmax or sigmoid) rather than logits?"""
        return self.output_activation in PROBABILITIES

    @property
    def trainable_params(self) -> int:
        return self.params - self.non_trainable_params

    @classmethod
    def unparsed(cls, problems) -> "Report":
        """The report of a spec that did not parse: its errors, nothing computed."""
        return cls(None, None, None, errors=list(problems))

    def to_json(self) -> dict:
        """The `check --json` document: the same keys whether the spec is valid, invalid or
        unparsable; what could not be computed is null."""
        def total(value):
            return value if self.output is not None else None
        return {
            "name": self.name, "valid": self.valid, "input": list(self.input) if self.input else None,
            "output": list(self.output) if self.output is not None else None,
            "params": total(self.params), "trainable_params": total(self.trainable_params),
            "non_trainable_params": total(self.non_trainable_params), "macs": total(self.macs),
            "activation_bytes": total(self.activation_bytes),
            "layers": layer_tree(self.rows),
            "errors": [p.to_json() for p in self.errors],
            "warnings": [p.to_json() for p in self.warnings],
        }

    def json(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)


def infer(spec) -> Report:
    """Run every shape rule over the spec. Errors are collected, not raised."""
    report = Report(spec.name, spec.input, None, output_activation=output_activation(spec))
    engine = _Engine(spec, report)
    x = Tensor(spec.input, spans=(Span.image(), Span.image()))
    out = engine.run(spec.layers, x, "", top=True)
    if out is not None and not report.errors:
        report.output = out.shape
        top = [r for r in report.rows if r.depth == 0]
        report.params = sum(r.params for r in top)
        report.non_trainable_params = sum(r.non_trainable for r in top)
        report.macs = sum(r.macs for r in top)
        report.activation_bytes = BYTES_PER_VALUE * (shapes.prod(spec.input) +
                                                     sum(shapes.prod(r.output) for r in report.rows if not r.composite))
        budget = spec.budget
        if report.params > budget.params:
            report.errors.append(Problem(spec.where.at("budget.params"), f"the model has {report.params:,} parameters, over the budget of "
                                         f"{budget.params:,}", f"shrink the model, or raise the budget: 'budget: {{params: {report.params}}}' in the spec, "
                                         f"or --max-params {report.params}"))
        if report.activation_bytes > budget.activation_bytes:
            report.errors.append(Problem(spec.where.at("budget.activation_bytes"), f"activations for one image take {human_bytes(report.activation_bytes)}, "
                                         f"over the budget of {human_bytes(budget.activation_bytes)}",
                                         f"use a smaller input or downsample earlier, or raise the budget: 'budget: {{activation_bytes: "
                                         f"{report.activation_bytes}}}' in the spec, or --max-memory {report.activation_bytes}"))
    return report


def output_activation(spec) -> str | None:
    """The activation a spec's output last went through: 'softmax', 'sigmoid', 'tanh', …, or
    None for a linear output (logits). Read from the kinds' facts (layers/base.py), into block
    uses, repeats and backbones (top or not), and back through layers that keep their input's
    range (a reshape, a crop, a pool). Training chooses `from_logits` by it, and a GAN's pixel
    range is its generator's."""
    return base.output_activation(spec.layers)


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


class _Engine:
    """Walks the layers as the builder does, computing with `Tensor`s instead of Keras tensors;
    what a kind's infer() sees of it is layers/walk.py's CheckContext."""

    def __init__(self, spec, report):
        self.spec, self.report = spec, report
        self.env = {"input": (None, [], Tensor(spec.input, spans=(Span.image(), Span.image())))}
        self.depth = -1
        self.layer = None
        self.stack = []        # enclosing layers, for rounding and error context
        self.input_names = []
        self.previous = None   # the layer before, in the list being run (None at a list's start)

    @property
    def image(self) -> tuple:
        """The model's input shape (H, W, C), for hints that look at it (a channels-first input)."""
        return tuple(self.spec.input)

    # --- the context a kind's infer() sees
    @property
    def rounding(self):
        for layer in reversed(self.stack):
            if layer.rounding:
                return layer.rounding
        return self.spec.rounding

    def warn(self, message, hint=""):
        self.report.warnings.append(Problem(self.layer.where, self._context(message), hint, self.layer.name))

    def error(self, message, hint=""):
        self.report.errors.append(Problem(self.layer.where, self._context(message), hint, self.layer.name))

    def lookup(self, name):
        return self.env[name]

    def bind(self, name, tensor):
        """Make a tensor referable by name (a composite's input is `input` inside it)."""
        self.env[name] = (None, [], tensor)

    def _context(self, message):
        layer = self.layer
        text = f"{layer.kind} '{layer.name}': {message}"
        uses = [l for l in self.stack[:-1] if l.args.used_block()]
        if uses:
            text += f" (in block '{uses[-1].kind}' used at line {uses[-1].where.line} as '{uses[-1].name}')"
        return text

    def run(self, layers, x, label, top=False):
        """Infer a sequence from input `x`; returns its output, or None after an error."""
        self.depth += 1
        prev = x
        outer_previous, self.previous = self.previous, None
        try:
            for layer in layers:
                ins = [prev if n == "" else self.env[n][2] for n in layer.inputs] if layer.inputs else [prev]
                self.input_names = [("previous" if n == "" else n) for n in layer.inputs] or ["previous"]
                producer = self.previous if not layer.inputs or layer.inputs[0] == "" else self.env[layer.inputs[0]][0]
                out = self.apply(layer, ins, producer)
                if out is None:
                    return None
                self.env[layer.name] = (layer, ins, out)
                self.previous = layer
                prev = out
            return prev
        finally:
            self.depth -= 1
            self.previous = outer_previous

    def apply(self, layer, ins, producer=None):
        row = Row(layer.where.path, layer.name, layer.kind, self.depth, [t.shape for t in ins], (), "", 0, 0, 0, (),
                  composite=bool(layer.args.children()), rule_in_full=layer.args.rule_in_full)
        self.report.rows.append(row)
        start = len(self.report.rows)
        outer_layer = self.layer
        self.layer = layer
        self.stack.append(layer)
        if layer.args.children():
            self.bind(f"{layer.name}_input", ins[0])
        try:
            result = layer.args.infer(ins, self)
            if result is not None and any(d > MAX_SIDE for d in result.shape):   # before the sums grow past any use
                raise Invalid(f"output {list(result.shape)[:3]} has a size over {MAX_SIDE:,}",
                              "no tensor in a network this large fits in memory: lower the upsampling, units or repeats")
            if result is not None:
                self._mistakes(layer, ins, producer)
        except Invalid as e:
            self.layer = layer
            self.report.errors.append(Problem(layer.where, self._context(e.message), e.hint, layer.name))
            result = None
        finally:
            self.stack.pop()
        self.layer = outer_layer
        if result is None:
            return None
        children = [r for r in self.report.rows[start:] if r.depth == self.depth + 1]
        row.params = result.params + result.non_trainable + sum(r.params for r in children)
        row.non_trainable = result.non_trainable + sum(r.non_trainable for r in children)
        if result.counts is not None:
            row.params, row.non_trainable = sum(result.counts), result.counts[1]
        if not layer.trainable:
            row.non_trainable = row.params
        row.macs = result.macs + sum(r.macs for r in children)
        row.output, row.rule = tuple(result.shape), result.rule
        rf, spans, whole = self._receptive(ins, result)
        out = Tensor(tuple(result.shape), rf, spans, whole)
        row.receptive_field = out.rf
        return out

    def _mistakes(self, layer, ins, producer):
        """Specs that are valid but rarely meant: a dense straight after a convolution or a
        pool, on a map of several positions, is a 1×1 convolution, not a classifier."""
        if layer.args.needs_flat_input and ins[0].spatial and ins[0].shape[:2] != (1, 1) \
                and producer is not None and producer.args.family in ("convolution", "pool"):
            self.warn(f"dense acts on each position; add flatten or global_avg_pool for a classifier (its input, from "
                      f"{producer.kind} '{producer.name}', is a {'×'.join(map(str, ins[0].shape))} map, so its output is "
                      f"{'×'.join(map(str, ins[0].shape[:2]))}×{layer.args.units})",
                      "put `- flatten` or `- global_avg_pool` before this dense; if a dense on each position is "
                      "meant, write `conv: {kernel: 1}`, which says so")

    def _receptive(self, ins, out):
        """(receptive field, spans, whole) of a layer's output. Through a window each position
        reads F input elements, through upsampling one or two (or a transposed convolution's
        taps): the Spans follow each position's rows and columns, and the field is the widest.
        A merge's element sees the union of its inputs' fields (a broadcast 1×1 input repeats
        one value everywhere, so it sets no spacing). Once an element depends on the whole
        image (a global pool, a flatten or dense, or a merge with one), its field is the image
        and stays so."""
        image = self.spec.input[:2]
        sources = out.merged or ins
        if out.whole or any(t.whole for t in sources):
            return image, (), True
        spaced = [t for t in sources if t.spatial and t.shape[:2] != (1, 1)] or sources
        broadcast = [t for t in sources if t not in spaced]
        spans = tuple(union([t.spans[axis] for t in spaced], [t.rf[axis] for t in broadcast]) for axis in (0, 1))
        if out.window and not out.merged:
            spans = tuple(spans[axis].through_window(out.window[axis], out.window[2 + axis], out.offset[axis])
                          for axis in (0, 1))
        elif out.upsample and not out.merged:
            taps = out.taps if isinstance(out.taps, str) else None
            spans = tuple(spans[axis].spread(out.upsample[axis], taps or out.taps[axis]) for axis in (0, 1))
        rf = tuple(math.ceil(s.width) for s in spans)
        return rf, spans, False


def format_table(report: Report) -> str:
    """The report as text: a row per layer (composites' children indented), then totals."""
    head = ("layer", "kind", "input → output", "rule", "params", "MACs", "RF")
    lines = []
    for r in report.rows:
        ins = " + ".join("×".join(map(str, s)) for s in r.inputs)
        lines.append(("  " * r.depth + r.name, r.kind, f"{ins} → {'×'.join(map(str, r.output)) or '?'}", r.rule,
                      f"{r.params:,}", count_text(r.macs), "×".join(map(str, r.receptive_field))))
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    widths[3] = min(widths[3], 44)

    def fmt(cols):
        cells = [c if i != 3 or len(c) <= widths[3] else c[: widths[3] - 1] + "…" for i, c in enumerate(cols)]
        return "  ".join(c.rjust(w) if i >= 4 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [f"{report.name}: input {'×'.join(map(str, report.input))}", fmt(head), fmt(["─" * w for w in widths])]
    out += [fmt(l) for l in lines]

    if report.valid:
        out.append(fmt(["─" * w for w in widths]))
        out.append(f"output {'×'.join(map(str, report.output))}; parameters {report.params:,} "
                   f"(trainable {report.trainable_params:,}, non-trainable {report.non_trainable_params:,}); "
                   f"multiply-adds {report.macs:,} ({count_text(report.macs)}); "
                   f"activations {human_bytes(report.activation_bytes)} per image")
    # a backbone's rule is its caveat (what is and is not counted): shown whole, under the table
    out += [f"{r.name}: {r.rule}" for r in report.rows if r.rule_in_full and len(r.rule) > widths[3]]
    return "\n".join(out)


def count_text(n: int) -> str:
    """A count in three digits, for tables and drawings.

    >>> count_text(9472), count_text(25_610_152), count_text(280)
    ('9.5K', '25.6M', '280')
    """
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
