"""LapganSpec → LapganReport: every level's networks checked as any spec, then against the
pyramid, without TensorFlow: level k's generator makes H_k × W_k × C (the residual h_k, or
the coarsest image I_K); the coarsest ends in tanh or sigmoid (the pixels' range, which the
data is scaled to); every discriminator gives one score; a conditional LAPGAN's labels are
the data's classes (the GAN's checks, families/gan/check.py, reused)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...check.report import format_table, infer
from ...errors import Problem
from ..gan.check import PIXEL_RANGES, _data_problems, _size, score_problems


@dataclass
class LapganReport:
    name: str
    networks: list                # [(role, Spec, Report)], finest level first
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    image_shape: tuple = ()
    classes: int = 0
    pixel_range: tuple | None = None

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def params(self) -> int:
        return sum(report.params for _, _, report in self.networks)

    def document(self) -> dict:
        return {"name": self.name, "kind": "lapgan", "valid": self.valid, "image_shape": list(self.image_shape),
                "classes": self.classes, "pixel_range": list(self.pixel_range) if self.pixel_range else None,
                "params": self.params if all(r.valid for _, _, r in self.networks) else None,
                "networks": {role: report.to_json() for role, _, report in self.networks},
                "errors": [p.to_json() for p in self.errors], "warnings": [p.to_json() for p in self.warnings]}

    def table(self) -> str:
        lines = []
        for role, _, report in self.networks:
            if report.input is not None:
                head = f"{role}: {_size(report.input)} → {_size(report.output) if report.output else '?'}"
                lines += [f"── {head} " + "─" * max(4, 60 - len(head)), format_table(report), ""]
        if self.valid:
            lines.append(f"{self.name}: {len(self.networks) // 2} levels, {self.params:,} parameters; images "
                         f"{_size(self.image_shape)}" + (f", {self.classes} classes" if self.classes else ""))
        return "\n".join(lines).rstrip("\n")


def infer_lapgan(spec) -> LapganReport:
    """Check every level's networks, then each against the pyramid. Errors are collected."""
    networks, errors, warnings = [], [], []
    channels = spec.image_shape[2]
    count = len(spec.levels)
    pixel_range = None
    for k, level in enumerate(spec.levels):
        coarsest = k == count - 1
        generator, discriminator = infer(level.generator), infer(level.discriminator)
        networks += [(f"level{k}_generator", level.generator, generator),
                     (f"level{k}_discriminator", level.discriminator, discriminator)]
        errors += generator.errors + discriminator.errors
        warnings += generator.warnings + discriminator.warnings
        last = level.generator.layers[-1]
        made = (*level.size, channels)
        what = f"I_{k}, the coarsest image" if coarsest else f"h_{k} = I_{k} − u(I_{k + 1})"
        if generator.valid and tuple(generator.output) != made:
            hint = (f"end it in {channels} channel{'s' if channels != 1 else ''} at {level.size[0]}×{level.size[1]}: "
                    f"e.g. a last `conv: {{filters: {channels}, kernel: 3, padding: same}}`")
            if len(generator.output) == 3 and tuple(generator.output[:2]) != level.size:
                hint += (f"; its maps are {generator.output[0]}×{generator.output[1]} but level {k} is "
                         f"{level.size[0]}×{level.size[1]} (input {_size(spec.image_shape)} halved {k} time"
                         f"{'s' if k != 1 else ''})")
            errors.append(Problem(last.where, f"levels[{k}]: the generator makes {_size(generator.output)}, but level {k} "
                                  f"needs {_size(made)} ({what})", hint, last.name))
        if coarsest:
            pixel_range = PIXEL_RANGES.get(generator.output_activation)
            if pixel_range is None:
                errors.append(Problem(last.where, f"levels[{k}]: the coarsest generator ends in "
                                      f"{generator.output_activation or 'a linear output'}, so its pixels have no "
                                      f"fixed range to match the data's", "end it in tanh (add `- tanh`) or sigmoid",
                                      last.name))
        if discriminator.valid:
            errors += score_problems(level.discriminator, discriminator.output)
    report = LapganReport(spec.name, networks, errors, warnings, tuple(spec.image_shape), spec.classes, pixel_range)
    report.errors += _data_problems(spec)
    return report
