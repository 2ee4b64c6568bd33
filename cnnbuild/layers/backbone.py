"""Transfer learning, the seeds' recipe: start from a trained network, freeze it, add a head.

    - backbone: {application: MobileNetV2, weights: mobilenet_v2_notop.weights.h5, freeze: true}
    - global_avg_pool
    - dense: {units: 5, activation: softmax}

`backbone` puts a whole network in front of the layers that follow: a keras.applications
model by name (`application:`) or another spec (`spec:`), with weights from a local file,
frozen entirely (`freeze: true`) or its first N layers (`freeze: N`), without its classifier
(`include_top: false`, the default). Fine-tuning later is the same spec with `freeze: false`
(or a smaller N), or a new spec whose backbone is the trained run itself:
`backbone: {spec: runs/flowers/spec.yaml, weights: runs/flowers/model.keras, include_top: true}`.

The static rule needs no TensorFlow:
- `spec:` is read by the spec stage (parse/parser.py), which hands this kind that spec as
  parsed, its names prefixed by this layer's name so they stay unique; its layers run as
  children, exactly like a composite: every row, shape, parameter and receptive field is the
  checker's own. `freeze: N` freezes its first N top-level layers.
- `application:` is read by the spec stage too, as that network's zoo spec (cnnbuild/zoo/,
  package data), cut before its top as Keras's `include_top=False` cuts it: its layers run as
  children, so the rows, multiply-adds and receptive field are the checker's own. The counts
  are Keras's, from the tables of applications.py (for each keras.applications model without
  its top, the Keras layers that hold parameters, with their trainable and non-trainable
  counts): a zoo spec has its own layer boundaries — a conv with batchnorm and activation is
  one spec layer and three Keras layers — and `freeze: N` counts Keras layers, so N may stop
  inside a spec layer; the spec layers wholly inside the first N show as frozen (`Zoo.ends`).
  The model built is keras.applications' own, not the zoo spec's, so a weights file saved
  from keras.applications loads by Keras's layer names. Where the zoo spec is not Keras's
  network at the input size (EfficientNetB0's even-size pads, `zoo_fits`), the backbone is
  one row with the table's counts and output size, and says why.

Relative `spec:` and `weights:` paths are read from the folder of the spec that names them.
A spec's weights file is loaded into that spec's own model, which the builder makes
(`ctx.model_of`), and copied layer by layer into this one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Literal, Optional, Union

from ..errors import Invalid
from ..fields import NonNegativeInt
from .applications import (PREPROCESSING, ZOO, Application, application_counts, application_output, keras_application,
                           min_size, zoo_fits)
from .base import Kind, Layer, Out, output_activation, part_name, register

TOP_START = ("flatten", "global_avg_pool", "global_max_pool")   # where include_top: false cuts a spec
# The arguments naming files (their field metadata): relative paths are read from the folder of
# the spec naming them, and parse/overrides.py makes them absolute for a run. The spec stage reads
# a `spec` file itself and hands it over as parsed (`with_files`).
SPEC_FILE = {"file": "spec"}
WEIGHTS_FILE = {"file": "weights"}


@register("backbone")
class Backbone(Kind):
    """A whole pretrained network as the start of this one (transfer learning).

    Attributes:
      application: a keras.applications network: VGG16, ResNet50, MobileNetV2, EfficientNetB0,
        InceptionV3, MobileNetV3Small or ConvNeXtTiny; the check shows it as its zoo spec's layers.
      spec: or another spec file (e.g. a zoo spec, or a trained run's spec.yaml).
      weights: a local weights file (.weights.h5, a .keras model, or Keras's .h5 download);
        without it the backbone starts from random weights.
      freeze: true freezes the whole backbone; N its first N layers (Keras layers of an
        application, as `model.layers[:N]`, the InputLayer first; top-level layers of a spec);
        false (default) trains it all (fine-tuning), even layers that its spec froze (a trained
        run's frozen backbone, for instance).
      include_top: keep the backbone's classifier (default false: cut before its first
        flatten or global pooling; an application always comes without its top here).
      preprocessing: auto (default) scales cnnbuild's 0…1 images the way the application's
        weights expect (its `preprocess_input`); none passes them as they are. Specs: none.
    """

    application: Optional[Application] = None
    spec: Optional[str] = field(default=None, metadata=SPEC_FILE)
    weights: Optional[str] = field(default=None, metadata=WEIGHTS_FILE)
    freeze: Union[bool, NonNegativeInt] = False
    include_top: bool = False
    preprocessing: Literal["auto", "none"] = "auto"
    # given by the spec stage (with_files), not written by users:
    folder: str = field(default="", metadata={"internal": True})       # the folder relative paths are read from
    layers: tuple = field(default=(), metadata={"internal": True})     # spec or zoo spec: its layers, names prefixed
    input: tuple = field(default=(), metadata={"internal": True})      # spec: its own `input:`
    # spec with weights: that spec as written, the model the weights file was saved from
    source: object = field(default=None, compare=False, repr=False, metadata={"internal": True})

    def __post_init__(self):
        if (self.application is None) == (self.spec is None):
            raise Invalid("a backbone needs exactly one of 'application' (a keras.applications name) or 'spec' "
                          "(a spec file)", "e.g. backbone: {application: MobileNetV2, weights: mobilenet_v2.weights.h5}")
        if self.application and self.include_top:
            raise Invalid("include_top: true is not supported for application backbones",
                          "add your own head after the backbone (e.g. global_avg_pool and a dense layer)")

    # ── parsing: the spec stage gives the folder and the spec named by `spec:`
    def with_files(self, folder: str, spec=None, source=None) -> "Backbone":
        """This backbone completed by the spec stage: `folder`, where its files are read
        from, and for `spec:` (or an application's zoo spec) that spec as parsed (`spec`, its
        names prefixed with this layer's) and, when `weights` were saved from it, as written
        (`source`). Its layers are cut before the top unless include_top, then frozen as
        `freeze` says. Raises Invalid."""
        if spec is None:
            return dataclasses.replace(self, folder=folder)
        if self.application:
            return dataclasses.replace(self, folder=folder, layers=self._zoo_layers(spec))
        layers = spec.layers
        if not self.include_top:
            cut = next((i for i, layer in enumerate(layers) if layer.kind in TOP_START), None)
            if cut is None:
                raise Invalid(f"include_top: false, but spec {self.spec} has no top-level flatten or global pooling "
                              "layer to cut at", "use include_top: true to keep the whole spec")
            if cut == 0:
                raise Invalid(f"include_top: false cuts spec {self.spec} at its first layer, leaving nothing",
                              "use include_top: true")
            layers = layers[:cut]
        layers = _thaw(layers)   # this backbone's `freeze` decides, over any its spec's layers said
        frozen = len(layers) if self.freeze is True else (0 if self.freeze is False else self.freeze)
        if frozen > len(layers):
            raise Invalid(f"freeze: {frozen}, but the backbone has {len(layers)} layers", f"freeze at most {len(layers)}")
        layers = tuple(dataclasses.replace(layer, trainable=False) if i < frozen else layer for i, layer in enumerate(layers))
        return dataclasses.replace(self, folder=folder, layers=layers, input=spec.input, source=source)

    def zoo_file(self) -> Optional[Path]:
        """The zoo spec the spec stage reads for an application, where there is one."""
        return ZOO[self.application].path() if self.application in ZOO else None

    def _zoo_layers(self, spec) -> tuple:
        """An application's zoo spec as Keras builds it without its top: cut before its first
        global pooling (keeping what Keras keeps), windows rounded down as Keras's 'valid'
        ones are, and frozen as `freeze` says — `freeze: N` freezes the layers whose
        parameters all lie in Keras's first N layers (`Zoo.ends`)."""
        zoo = ZOO[self.application]
        cut = next(i for i, layer in enumerate(spec.layers) if layer.kind in TOP_START)
        kept = tuple(layer for layer in spec.layers[cut:] if any(layer.name.endswith(f"_{name}") for name in zoo.kept))
        layers = tuple(dataclasses.replace(layer, rounding=layer.rounding or "floor") for layer in spec.layers[:cut] + kept)
        if self.freeze is True:
            return tuple(dataclasses.replace(layer, trainable=False) for layer in layers)
        ends = zoo.layer_ends() if self.freeze else ()   # one per layer of the spec without its top
        return tuple(dataclasses.replace(layer, trainable=False) if i < len(ends) and ends[i] <= self.freeze else layer
                     for i, layer in enumerate(layers))

    rule_in_full = True   # its rule says what is and is not counted

    def children(self):
        return [("", self.layers)] if self.layers else []

    def parts(self):
        return frozenset({"preprocess"}) if self.application else frozenset()

    def output_activation(self):
        """Its spec's answer, top included or not; an application's, from its zoo spec cut as Keras cuts it."""
        return output_activation(self.layers)

    # ── what the drawing shows: a box for an application (its zoo layers are the check's), the layers of a spec in a frame
    def label(self):
        return f"backbone {self.application or Path(self.spec).name}"

    def freeze_note(self):
        return "frozen" if self.freeze is True else f"first {self.freeze} frozen" if self.freeze else ""

    def drawing(self, layer, view):
        return view.framed(layer, [self.layers]) if self.layers and not self.application else view.box(layer)

    def weights_path(self) -> Optional[Path]:
        return None if self.weights is None else Path(self.folder or ".", self.weights)

    # ── the static rule
    def infer(self, ins, ctx):
        x = ins[0]
        if not x.spatial:
            raise Invalid(f"a backbone needs a height × width × channels input, got shape {list(x.shape)}",
                          "put the backbone first")
        weights = self.weights_path()
        if weights is not None and not weights.is_file():
            raise Invalid(f"weights file {self.weights} not found (looked in {self.folder})",
                          "give a path relative to this spec, or an absolute one; save weights with "
                          "model.save_weights('name.weights.h5')")
        if self.application:
            return self._infer_application(x, ctx)
        channels = self.input[2] if self.input else x.shape[2]
        if weights is not None and channels != x.shape[2]:
            raise Invalid(f"spec {self.spec} takes {channels} channels but receives {x.shape[2]}, so its weights "
                          "cannot load", f"set this spec's input to [{x.shape[0]}, {x.shape[1]}, {channels}]")
        if self.include_top and tuple(self.input) != tuple(x.shape):
            raise Invalid(f"include_top: true keeps spec {self.spec}'s whole classifier, which needs its input "
                          f"{list(self.input)}, but it receives {list(x.shape)}",
                          f"set this spec's input to {list(self.input)}, or use include_top: false")
        out = ctx.run(self.layers, x, "")
        if out is None:
            return None
        return Out(out.shape, f"spec {Path(self.spec).name}" + self._freeze_text(len(self.layers), "layers"), merged=[out])

    def _infer_application(self, x, ctx):
        """An application's rows are its zoo spec's (cnnbuild/zoo/), where that spec is Keras's
        network at this input size; its parameter counts, trainable and frozen as `freeze`
        says, are Keras's own layer by layer (the tables of applications.py), since `freeze: N`
        may stop inside one of the spec's layers (a convolution that is three Keras layers)."""
        name = self.application
        height, width, channels = x.shape
        if channels != 3:
            raise Invalid(f"{name} takes RGB images (3 channels), got {channels}",
                          "set the spec's input to [H, W, 3]: grayscale images are converted to RGB when read")
        smallest = min_size(name)
        if min(height, width) < smallest:
            raise Invalid(f"{name} needs an input of at least {smallest}×{smallest}, got {height}×{width}",
                          f"use input: [{max(height, smallest)}, {max(width, smallest)}, 3] (images are resized on reading)")
        count, rows = application_counts(name)
        frozen = count if self.freeze is True else (0 if self.freeze is False else self.freeze)
        if frozen > count:
            raise Invalid(f"freeze: {frozen}, but {name} has {count} Keras layers", f"freeze at most {count}")
        trainable = sum(t for i, t, _ in rows if i >= frozen)
        non_trainable = sum(n for _, _, n in rows) + sum(t for i, t, _ in rows if i < frozen)
        shape = application_output(name, height, width)
        rule = f"keras.applications {name}, no top" + self._freeze_text(count, "Keras layers")
        if not self.layers:
            return Out(shape, rule + "; MACs not counted", trainable, non_trainable, whole=True)
        zoo = ZOO[name].file
        if not zoo_fits(name, height, width):
            return Out(shape, f"{rule}; MACs not counted: zoo {zoo} pads its stride-2 steps as Keras only on even "
                       f"sizes, and {height}×{width} halves to an odd one (a multiple of 32 fits)",
                       trainable, non_trainable, whole=True)
        out = ctx.run(self.layers, x, "")
        if out is None:
            return None
        return Out(out.shape, f"{rule}; layers as zoo {zoo}", merged=[out], counts=(trainable, non_trainable))

    def _freeze_text(self, count, unit):
        if self.freeze is True:
            return ", frozen"
        if self.freeze:
            return f", first {self.freeze} of {count} {unit} frozen"
        return ""

    # ── the Keras construction
    def build(self, ins, ctx):
        keras = ctx.keras
        x = ins[0]
        weights = self.weights_path()
        if self.application:
            if self.preprocessing == "auto":
                x = ctx.custom.ApplicationInput(PREPROCESSING[self.application], name=part_name(ctx.name, "preprocess"))(x)
            network = keras_application(self.application)(
                include_top=False, weights=None, input_shape=tuple(x.shape[1:]), name=ctx.name)
            if weights is not None and not ctx.skip_weights:
                _load_weights(network, weights, self.weights)
            if self.freeze is True:
                network.trainable = False
            elif self.freeze:
                for layer in network.layers[:self.freeze]:
                    layer.trainable = False
            return network(x)
        outer_skip = ctx.skip_weights
        ctx.skip_weights = outer_skip or weights is not None   # this file's weights replace the inner ones
        try:
            out = ctx.run(self.layers, x)
        finally:
            ctx.skip_weights = outer_skip
        if weights is not None and not outer_skip:
            self._copy_spec_weights(out, ins, ctx, weights)
        # an Identity carrying the backbone's own name, as repeat and block uses do, so
        # model.get_layer(name) finds its output
        return keras.layers.Identity(name=ctx.name)(out)

    def _copy_spec_weights(self, out, ins, ctx, weights):
        """Load the file into the spec's own model (its layer names), then copy each layer's
        weights to this backbone's layers (the same names with this layer's prefix)."""
        source = ctx.model_of(self.source)
        _load_weights(source, weights, self.weights)
        # the Keras layers between the backbone's input and its output: keras.Function maps that graph
        targets = {layer.name: layer for layer in ctx.keras.Function(ins[:1], out).operations}
        prefix = f"{ctx.name}_"
        copied = 0
        for layer in source.layers:
            if not layer.weights:
                continue
            target = targets.get(prefix + layer.name)
            if target is None:
                continue            # the spec's top, cut off by include_top: false
            values = layer.get_weights()
            if [v.shape for v in values] != [tuple(w.shape) for w in target.weights]:
                raise ValueError(f"{self.weights}: layer {layer.name} has weights of shapes "
                                 f"{[v.shape for v in values]}, the backbone's {[tuple(w.shape) for w in target.weights]}")
            target.set_weights(values)
            copied += 1
        if copied == 0 and any(t.weights for t in targets.values()):
            raise ValueError(f"{self.weights}: no layer of spec {self.spec} matched the backbone's layers")


def _thaw(layers: tuple) -> tuple:
    """The layers with every `trainable: false` and nested backbone `freeze` undone, through
    all composites (any dataclass field holding layers or lists of layers)."""

    def is_layers(value):
        return isinstance(value, tuple) and value and all(isinstance(v, Layer) for v in value)

    def thaw(layer):
        changes = {}
        for f in dataclasses.fields(layer.args):
            value = getattr(layer.args, f.name)
            if is_layers(value):
                changes[f.name] = _thaw(value)
            elif isinstance(value, tuple) and value and all(is_layers(v) or v == () for v in value) \
                    and any(is_layers(v) for v in value):
                changes[f.name] = tuple(_thaw(v) if v else v for v in value)
        if isinstance(layer.args, Backbone):
            changes["freeze"] = False
        return dataclasses.replace(layer, args=dataclasses.replace(layer.args, **changes) if changes else layer.args,
                                   trainable=True)
    return tuple(thaw(layer) for layer in layers)


def _load_weights(model, path: Path, written: str):
    try:
        model.load_weights(str(path))
    except Exception as e:   # a file for another network: say which file, never a traceback
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"backbone weights {written}: cannot load into {model.name}: {message[:300]}") from None

