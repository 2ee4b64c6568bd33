"""A spec's data checked before TensorFlow starts: the model's output from the static check,
then the sources' own file-system problems (sources/, `data_problems`)."""
from __future__ import annotations

from ..sources import precheck
from .report import infer


def precheck_spec(spec) -> None:
    """`sources.precheck` for a whole Spec (its model's output from the static check); a spec
    whose model is invalid is left to the check that reports it."""
    report = infer(spec)
    if report.valid:
        precheck(spec.data, report.output)
