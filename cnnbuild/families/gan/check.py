"""GanSpec → GanReport: both networks checked as any spec (report.py), then checked against
each other, without TensorFlow.

The seeds' GAN pits G(z) against D(x), so the two must fit: G makes images of the shape D
reads (the discriminator's `input:`, which is also the size the data is read at); G's pixels
lie in a fixed range (it ends in tanh, [-1, 1], or sigmoid, [0, 1]) that the data is scaled
to; D gives one score per image (a logit, or a probability when it ends in sigmoid); and a
conditional GAN's K labels are the data's K classes. Each mismatch is an error at the place
to change, with the numbers and a fix.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import Problem
from ...sources import classes_origin, data_problems
from ...check.report import Report, format_table, infer, output_activation
from .spec import GanSpec

PIXEL_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}   # G's last activation → the range of its pixels


@dataclass
class GanReport:
    """What `infer_gan` found: each network's Report, and every error (the networks' own,
    then those of the pair)."""

    name: str
    generator: Report
    discriminator: Report
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    image_shape: tuple = ()
    classes: int = 0
    noise: int = 0
    pixel_range: tuple | None = None    # (lo, hi) from G's last activation; None when it has none of PIXEL_RANGES

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def params(self) -> int:
        return self.generator.params + self.discriminator.params

    def to_json(self) -> dict:
        """The `check --json` document of a GAN spec: both networks' documents, and every error."""
        return {"name": self.name, "kind": "gan", "valid": self.valid, "image_shape": list(self.image_shape),
                "classes": self.classes, "pixel_range": list(self.pixel_range) if self.pixel_range else None,
                "params": self.params if self.generator.valid and self.discriminator.valid else None,
                "generator": self.generator.to_json(), "discriminator": self.discriminator.to_json(),
                "errors": [p.to_json() for p in self.errors], "warnings": [p.to_json() for p in self.warnings]}

    def json(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)

    def document(self) -> dict:
        return self.to_json()

    def table(self) -> str:
        return format_gan_table(self)


def infer_gan(spec: GanSpec) -> GanReport:
    """Check both networks, then the pair. Errors are collected, not raised."""
    generator, discriminator = infer(spec.generator), infer(spec.discriminator)
    report = GanReport(spec.name, generator, discriminator, image_shape=tuple(spec.image_shape), classes=spec.classes,
                       noise=spec.gan.noise, errors=generator.errors + discriminator.errors,
                       warnings=generator.warnings + discriminator.warnings)
    activation = generator.output_activation
    report.pixel_range = PIXEL_RANGES.get(activation)
    last = spec.generator.layers[-1]
    if report.pixel_range is None:
        report.errors.append(Problem(last.where, f"the generator ends in {activation or 'a linear output'} ({last.kind} "
                                     f"'{last.name}'), so its pixels have no fixed range to match the data's",
                                     "end it in tanh (pixels in [-1, 1]: add `- tanh`, or `activation: tanh` on the last "
                                     "layer) or sigmoid ([0, 1])", last.name))
    if generator.valid and tuple(generator.output) != tuple(spec.image_shape):
        report.errors.append(_shape_mismatch(spec, generator.output))
    if discriminator.valid:
        report.errors += _score_problems(spec, discriminator.output)
    report.errors += _data_problems(spec)
    return report


def _size(shape) -> str:
    return "×".join(map(str, shape))


def _shape_mismatch(spec: GanSpec, made) -> Problem:
    """G makes `made`, D reads the image shape: the error at G's last layer, with what to change."""
    image = tuple(spec.image_shape)
    last = spec.generator.layers[-1]
    where = spec.place("discriminator.input")
    hints = [f"set the discriminator's input to {list(made)} (at {where}; the data is then read at that size)"]
    if len(made) == 3 and made[:2] != image[:2]:
        upsampler = _last_upsampler(spec.generator.layers)
        ratio = [m / i for m, i in zip(made[:2], image[:2])]
        if upsampler is not None and ratio[0] == ratio[1] and ratio[0] != 1:
            layer, (argument, factor) = upsampler
            wanted = factor / ratio[0]
            if wanted >= 1 and float(wanted).is_integer():
                hints.append(f"give {layer.kind} '{layer.name}' {argument} "
                             f"{int(wanted)} instead of {factor}")
            elif ratio[0] < 1:
                hints.append("upsample once more in the generator (e.g. `- upsample: 2`, or a conv_transpose with stride 2)")
    if len(made) == 3 and made[2] != image[2]:
        hints.append(f"give the generator's last convolution {image[2]} filters (one per image channel)")
    elif len(made) != 3:
        hints.append(f"end the generator in an image: e.g. `- reshape: {list(image)}` or a conv_transpose")
    return Problem(last.where, f"the generator makes {_size(made)} images, but the discriminator reads {_size(image)} "
                   f"(its input, at {where})", "; or ".join(hints), last.name)


def _last_upsampler(layers):
    """(layer, (argument, factor)) of the generator's last top-level layer that enlarges (a
    conv_transpose's stride, an upsample's size: Kind.upsampling), or None."""
    for layer in reversed(layers):
        if layer.args.upsampling() is not None:
            return layer, layer.args.upsampling()
    return None


def _score_problems(spec: GanSpec, output) -> list:
    return score_problems(spec.discriminator, output)


def score_problems(discriminator, output) -> list:
    """D (a Spec) must give one score per image: output (1,), a logit or (after a sigmoid) a probability."""
    last = discriminator.layers[-1]
    activation = output_activation(discriminator)
    if tuple(output) != (1,):
        hint = "end it with `- dense: 1` (a logit; `dense: {units: 1, activation: sigmoid}` for a probability)"
        if len(output) == 3:
            hint = "add `- flatten` and `- dense: 1` at its end (a logit)"
        return [Problem(last.where, f"the discriminator gives {_size(output)} outputs per image; it must give one score "
                        "(the probability, or its logit, that the image is real)", hint, last.name)]
    if activation == "softmax":
        return [Problem(last.where, "the discriminator ends in softmax over one unit, which is always 1",
                        "remove the softmax (a logit), or use sigmoid (a probability)", last.name)]
    return []


def data_classes(data, folder: str):
    """(how many classes the data has, what says so), when it is known without reading images; None otherwise."""
    return classes_origin(data, folder)


def _data_problems(spec: GanSpec) -> list:
    """The data's files (as `cnnbuild check` looks at a spec's), and a conditional GAN's labels against its classes."""
    at = spec.place("data")
    problems = []
    folder = str(Path(spec.file).resolve().parent) if not spec.file.startswith("<") else str(Path.cwd())
    # the labels are not the discriminator's outputs (None): the class count is checked below
    for problem in data_problems(spec.data, None, files_only=True, folder=folder):
        problems.append(Problem(at, f"data: {problem.message}", problem.hint or "fix data.path (relative paths are "
                                                                                "read from the spec's folder)"))
    if spec.gan.conditional and spec.gan.classes is not None and not problems:
        known = data_classes(spec.data, folder)
        if known is not None and known[0] != spec.classes:
            count, said = known
            problems.append(Problem(spec.place("gan.classes"), f"gan.classes is {spec.classes}, but {said}: the labels "
                                    f"the GAN is conditioned on must be the data's classes",
                                    f"set gan.classes: {count}, or remove it (the data's count is used)"))
    return problems


def format_gan_table(report: GanReport) -> str:
    """Both networks' tables, each headed by what it reads and makes, then the pair's totals."""
    image, classes = _size(report.image_shape), report.classes
    heads = {"generator": f"generator: noise {report.noise}" + (f" + one-hot label {classes}" if classes else "")
                          + f" → image {image}",
             "discriminator": f"discriminator: image {image}" + (f" + label as {classes} channels" if classes else "")
                              + " → one score"}
    lines = []
    for role, network in (("generator", report.generator), ("discriminator", report.discriminator)):
        if network.input is None:
            continue
        lines += [f"── {heads[role]} " + "─" * max(4, 60 - len(heads[role])), format_table(network), ""]
    if report.generator.valid and report.discriminator.valid:
        lines.append(f"{report.name}: generator {report.generator.params:,} + discriminator "
                     f"{report.discriminator.params:,} = {report.params:,} parameters; images "
                     f"{_size(report.image_shape)}" + (f", {report.classes} classes" if report.classes else ""))
    return "\n".join(lines).rstrip("\n")
