"""Spec → Keras 3 functional model, layer for layer as the report describes it.

Keras is imported inside `build_model`, so importing this module is free.
"""
from __future__ import annotations

import math
import os

from ..errors import SpecError

SUMMARY_WIDTH = 120   # columns of Keras's summary: name, output shape and Param #, with room for long names


def build_model(spec, report=None):
    """Build the uncompiled Keras model of a Spec (`report`: its `infer`, when already made).

    The spec is checked first: an invalid spec raises SpecError before any tensor is
    allocated, so a model over the budget is never built."""
    from ..check.report import infer
    report = report or infer(spec)
    if not report.valid:
        raise SpecError(report.errors)
    import keras

    from ..layers import keras_layers
    inputs = keras.Input(shape=spec.input, name="input")
    builder = _Builder(keras, keras_layers, inputs)
    outputs = builder.run(spec.layers, inputs)
    return keras.Model(inputs, outputs, name=spec.name)


def keras_summary(model) -> str:
    """Keras's `model.summary()` as text, every column of it. Keras draws the table with rich,
    whose console takes its width from the terminal, or 80 columns in a pipe or a log, which
    cuts off the Param # column whatever `line_length` says; rich reads COLUMNS when Keras makes
    that console, so COLUMNS is set to the table's width for the call."""
    printed = []
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(SUMMARY_WIDTH)
    try:
        model.summary(line_length=SUMMARY_WIDTH, print_fn=printed.append)
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return "".join(printed).rstrip("\n")


def differences(report, model) -> list[str]:
    """Where a built model disagrees with the static report: its parameter counts (all,
    trainable, non-trainable), its output shape, and each top-level layer's output shape."""
    found = []
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    for what, static, built in (("parameters", report.params, model.count_params()),
                                ("trainable parameters", report.trainable_params, trainable),
                                ("non-trainable parameters", report.non_trainable_params, non_trainable)):
        if static != built:
            found.append(f"{what}: the check counts {static:,}, Keras {built:,}")
    if tuple(model.output_shape[1:]) != tuple(report.output):
        found.append(f"output: the check gives {list(report.output)}, Keras {list(model.output_shape[1:])}")
    names = {layer.name for layer in model.layers}
    for row in report.rows:
        if row.depth != 0:
            continue
        if row.name not in names:
            found.append(f"layer '{row.name}': no Keras layer of that name")
            continue
        built = tuple(model.get_layer(row.name).output.shape[1:])
        if built != tuple(row.output):
            found.append(f"layer '{row.name}': the check gives {list(row.output)}, Keras {list(built)}")
    return found


class _Builder:
    """The context a kind's build() sees, layers/walk.py's BuildContext: Keras, the layer's
    name, and the way to build children (for composites) and to find named layers."""

    def __init__(self, keras, custom, inputs):
        self.keras, self.custom = keras, custom
        self.env = {"input": (None, [], inputs)}
        self.layer = None
        self.trainable = [True]
        self.skip_weights = False   # inside a spec backbone with its own weights file: inner backbones load none

    @property
    def name(self):
        return self.layer.name

    def model_of(self, spec):
        """Another spec's own model (a spec backbone's, as written: its weights file loads into it)."""
        return build_model(spec)

    @staticmethod
    def shape(tensor):
        return tuple(tensor.shape[1:])

    def lookup(self, name):
        return self.env[name]

    def bind(self, name, tensor):
        """Make a tensor referable by name (a composite's input is `input` inside it)."""
        self.env[name] = (None, [], tensor)

    def run(self, layers, x, label=""):
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


PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")
# Keras layers whose output values lie within their input's: Identity (composites end in one),
# and those the range-keeping kinds build (Kind.keeps_range), so both answers look through the same layers
PASS_THROUGH = ("Identity", "Flatten", "Reshape", "Dropout", "SpatialDropout2D", "Cropping2D", "UpSampling2D",
                "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D")


def ends_in_probabilities(model) -> bool:
    """Does a Keras model output probabilities (softmax or sigmoid) rather than logits?
    (`output_activation` names it.)"""
    return output_activation(model) in PROBABILITY_ACTIVATIONS


def output_activation(model):
    """The activation a Keras model's output comes from: 'softmax', 'sigmoid', 'tanh', … or
    None (a linear output: logits).

    For a model loaded from a file (export reads a run's model.keras, whatever wrote it), where
    no spec is at hand; a spec's answer is the check's (check.report.output_activation), which
    training reads, and tests/test_kinds.py keeps the two equal for every zoo spec. The output
    is followed back through layers that keep their input's values (PASS_THROUGH, a linear
    Activation) and through nested models, to the layer that made it — a Softmax layer, or
    any layer (Activation, Dense, a convolution) whose activation is not linear. Export adds
    a softmax only to logits.
    """
    import keras
    tensor = model.outputs[0]
    while True:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None
        layer = history.operation
        if isinstance(layer, keras.Model):              # a model used as a layer: look inside
            tensor = layer.outputs[history.tensor_index]
            continue
        if isinstance(layer, keras.layers.Softmax):
            return "softmax"
        activation = getattr(layer, "activation", None)
        name = getattr(activation, "__name__", None) or (activation if isinstance(activation, str) else None)
        if name and name != "linear":
            return name
        if not (type(layer).__name__ in PASS_THROUGH or (isinstance(layer, keras.layers.Activation) and name == "linear")):
            return None
        tensor = layer._inbound_nodes[history.node_index].input_tensors[0]


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
