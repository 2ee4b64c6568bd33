"""The classifier family: one network from an image to class scores — or, when the data holds
masks, to a class per pixel (segmentation: the same stages; the data section's task and the
network's output shape decide, see train/objective.py). A spec without another family's
top-level keys is a classifier's."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..parse.parser import Spec
from .base import Evaluated, Family


@dataclass
class Checked:
    """The check of a classifier spec: its Report, and the problems its data has (files named
    that are not there, class folders against the model's outputs)."""

    report: object
    data_errors: list = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.report.valid and not self.data_errors

    @property
    def errors(self) -> list:
        return list(self.report.errors) + [f"data: {problem}" for problem in self.data_errors]

    @property
    def warnings(self) -> list:
        return list(self.report.warnings)

    def table(self) -> str:
        from ..check import format_table
        return format_table(self.report)

    def document(self) -> dict:
        # "valid" answers the exit code's question: a spec whose data is missing does not train
        extra = {"valid": False, "data_errors": self.data_errors} if self.data_errors else {}
        return self.report.to_json() | extra


def parse(root, resolved=None, problems=()):
    from ..parse.parser import from_node
    return from_node(root, resolved=resolved, problems=problems)


def check(spec, files_only: bool = True) -> Checked:
    from ..check import infer
    from ..check.data import data_problems
    report = infer(spec)
    return Checked(report, data_problems(spec.data, report.output, files_only=files_only) if report.valid else [])


def networks(spec, checked) -> list:
    return [("", spec, checked.report)]


def with_budget(spec, max_params=None, max_memory=None):
    from ..parse import with_budget as applied
    return applied(spec, max_params, max_memory)


def train(spec, checked, out=None, stdout=None) -> dict:
    from ..train.run import train as run
    return run(spec, checked.report, out=out, stdout=stdout)


def owns_run(folder) -> bool:
    return True     # the default, as for specs


def export(run, out=None, format="savedmodel") -> list:
    import time

    from ..serve.export import LABELS, export_run
    start = time.perf_counter()
    manifest = export_run(run, out, format)
    check = manifest["verified"]
    channels = manifest["input"]["shape"][-1]
    return [f"exported {run} → {manifest['path']} ({LABELS[manifest['format']]}, {len(manifest['classes'])} classes, "
            f"input uint8 [batch, height, width, {channels or 'channels'}]"
            f"{'' if channels else ' with 1, 3 or 4 channels'}, resized to "
            f"{'×'.join(map(str, manifest['input']['training_size']))})",
            f"verified with {check['runtime']}: max |export − Keras| = {check['max_abs_diff']:.2e} on {check['images']} "
            f"images (≤ {check['tolerance']:g}); two calls identical; {time.perf_counter() - start:.1f} s"]


def evaluate(run, options) -> Evaluated:
    from .. import runfolder
    from ..errors import UsageError
    from ..serve.evaluate import PNG, draw_confusion, evaluate_run, format_result
    if options.get("classifier"):
        raise UsageError(f"--classifier: {run} is not a GAN run (no gan.json); --classifier scores a GAN's samples; "
                         f"evaluate a classifier run without it: cnnbuild evaluate {run}")
    result = evaluate_run(run, options.get("data"))
    png = Path(options["out"]) if options.get("out") else Path(run) / PNG
    runfolder.write_json(png.with_suffix(".json"), result.to_json())
    draw_confusion(result, png)
    return Evaluated(result.to_json() | {"png": str(png)},
                     f"{format_result(result)}\nconfusion matrix: {png}; figures: {png.with_suffix('.json')}")


def predict(model, images, top=1, out="predictions"):
    from ..serve.predict import predict_files
    return predict_files(model, images, top, out)


FAMILY = Family(name="classifier", title="classifier", description="a classifier (or segmentation) network", marks=(), spec_type=Spec, parse=parse, check=check, networks=networks,
                with_budget=with_budget, train=train, owns_run=owns_run, export=export, evaluate=evaluate,
                predict=predict, verbs_hint="use cnnbuild predict or evaluate on it")
