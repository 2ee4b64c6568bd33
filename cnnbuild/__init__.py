"""cnnbuild: describe a CNN in YAML, check it instantly, build the identical Keras model,
train it, export it.

    spec = cnnbuild.load_spec("specs/lenet5.yaml")   # YAML → Spec (validated)
    report = cnnbuild.check(spec)                   # Spec → Report (no TensorFlow)
    model = cnnbuild.build_model(spec)              # Spec → keras.Model
"""
from .build import build_model
from .errors import Problem, SpecError, UsageError, Where
from .report import Report, infer
from .spec import Spec, load_spec, parse_spec

check = infer

__all__ = ["Problem", "Report", "Spec", "SpecError", "UsageError", "Where", "build_model", "check", "infer",
           "load_spec", "parse_spec"]
