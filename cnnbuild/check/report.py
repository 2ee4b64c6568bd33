"""Spec → Report: every layer's shapes, rule, parameters, multiply-adds and receptive field,
computed without TensorFlow. The report is what `cnnbuild check` prints and what the built
Keras model is tested against."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..layers import shapes
from ..errors import Invalid, Problem
from ..layers.base import Tensor

BYTES_PER_VALUE = 4   # float32 activations


@dataclass
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


@dataclass
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

    @property
    def valid(self) -> bool:
        return not self.errors

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
    report = Report(spec.name, spec.input, None)
    engine = _Engine(spec, report)
    x = Tensor(spec.input)
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


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


class _Engine:
    """Walks the layers as the builder does, computing with `Tensor`s instead of Keras tensors."""

    def __init__(self, spec, report):
        self.spec, self.report = spec, report
        self.env = {"input": (None, [], Tensor(spec.input))}
        self.depth = -1
        self.layer = None
        self.stack = []        # enclosing layers, for rounding and error context
        self.input_names = []

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
        try:
            for layer in layers:
                ins = [prev if n == "" else self.env[n][2] for n in layer.inputs] if layer.inputs else [prev]
                self.input_names = [("previous" if n == "" else n) for n in layer.inputs] or ["previous"]
                out = self.apply(layer, ins)
                if out is None:
                    return None
                self.env[layer.name] = (layer, ins, out)
                prev = out
            return prev
        finally:
            self.depth -= 1

    def apply(self, layer, ins):
        row = Row(layer.where.path, layer.name, layer.kind, self.depth, [t.shape for t in ins], (), "", 0, 0, 0, (),
                  composite=bool(layer.args.children()))
        self.report.rows.append(row)
        start = len(self.report.rows)
        outer_layer = self.layer
        self.layer = layer
        self.stack.append(layer)
        if layer.args.children():
            self.bind(f"{layer.name}_input", ins[0])
        try:
            result = layer.args.infer(ins, self)
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
        if not layer.trainable:
            row.non_trainable = row.params
        row.macs = result.macs + sum(r.macs for r in children)
        row.output, row.rule = tuple(result.shape), result.rule
        out = Tensor(tuple(result.shape), *self._receptive(ins, result))
        row.receptive_field = out.rf
        return out

    def _receptive(self, ins, out):
        """(receptive field, jump, whole) of a layer's output. The field grows by (F − 1)·jump
        through a window; a merge's element sees the union of its inputs' fields, spaced as
        its inputs larger than 1×1 are (a broadcast 1×1 input repeats one value everywhere,
        so it sets no spacing). Once an element depends on the whole image (a global pool,
        a flatten or dense, or a merge with one), its field is the image and stays so."""
        image = self.spec.input[:2]
        if out.whole:
            return image, tuple(float(d) for d in image), True
        sources = out.merged or ins
        whole = any(t.whole for t in sources)
        spaced = [t for t in sources if t.spatial and t.shape[:2] != (1, 1)] or sources
        rf = tuple(max(t.rf[i] for t in sources) for i in range(2))
        jump = tuple(max(t.jump[i] for t in spaced) for i in range(2))
        if out.window and not out.merged:
            kh, kw, sh, sw = out.window
            rf = (rf[0] + (kh - 1) * jump[0], rf[1] + (kw - 1) * jump[1])
            jump = (jump[0] * sh, jump[1] * sw)
        elif out.upsample and not out.merged:
            jump = (jump[0] / out.upsample[0], jump[1] / out.upsample[1])
        if whole:
            rf = image
        rf = tuple(int(r) if float(r).is_integer() else r for r in rf)
        return rf, jump, whole


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
