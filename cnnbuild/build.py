"""Spec → Keras 3 functional model, layer for layer as the report describes it.

Keras is imported inside `build_model`, so importing this module is free.
"""
from __future__ import annotations

from .errors import SpecError


def build_model(spec_or_path, report=None):
    """Build the uncompiled Keras model of a spec (a Spec or a path to a YAML file).

    The spec is checked first: an invalid spec raises SpecError before any tensor is
    allocated, so a model over the budget is never built."""
    from .report import infer
    from .spec import Spec, load_spec
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load_spec(spec_or_path)
    report = report or infer(spec)
    if not report.valid:
        raise SpecError(report.errors)
    import keras

    from . import keras_layers
    inputs = keras.Input(shape=spec.input, name="input")
    builder = _Builder(keras, keras_layers, inputs)
    outputs = builder.run(spec.layers, inputs)
    model = keras.Model(inputs, outputs, name=spec.name)
    return model


class _Builder:
    """The context a kind's build() sees: Keras, the layer's name, and the way to build
    children (for composites) and to find named layers."""

    def __init__(self, keras, custom, inputs):
        self.keras, self.custom = keras, custom
        self.env = {"input": (None, [], inputs)}
        self.layer = None
        self.trainable = [True]

    @property
    def name(self):
        return self.layer.name

    @staticmethod
    def shape(tensor):
        return tuple(tensor.shape[1:])

    def lookup(self, name):
        return self.env[name]

    def bind(self, name, tensor):
        """Make a tensor referable by name (a composite's input is `input` inside it)."""
        self.env[name] = (None, [], tensor)

    def run(self, layers, x, label=None):
        prev = x
        for layer in layers:
            ins = [prev if n == "" else self.env[n][2] for n in layer.inputs] if layer.inputs else [prev]
            outer = self.layer
            self.layer = layer
            self.trainable.append(self.trainable[-1] and layer.trainable)
            if layer.args.children():
                self.bind(f"{layer.name}_input", ins[0])
            try:
                out = layer.args.build(ins, self)
            finally:
                self.trainable.pop()
                self.layer = outer
            if not layer.trainable or not self.trainable[-1]:
                _freeze(out, ins)
            self.env[layer.name] = (layer, ins, out)
            prev = out
        return prev


def _freeze(out, ins):
    """Mark every Keras layer between `ins` and `out` as not trainable."""
    for layer in layers_between(out, ins).values():
        layer.trainable = False


def layers_between(out, ins) -> dict:
    """The Keras layers between input tensors `ins` and `out`, by name."""
    found, seen = {}, set()
    stop = {id(t) for t in ins}
    stack = [out]
    while stack:
        tensor = stack.pop()
        if id(tensor) in stop or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            continue
        layer = history.operation
        found[layer.name] = layer
        stack.extend(layer._inbound_nodes[history.node_index].input_tensors)
    return found
