"""cnnbuild: describe a CNN in YAML, check it instantly, build the identical Keras model,
train it, export it. The Python API is the command line's:

    spec = cnnbuild.load_spec("specs/lenet5.yaml")    # YAML → Spec (validated)
    report = cnnbuild.check(spec)                    # Spec → Report (no TensorFlow)
    model = cnnbuild.build_model(spec)               # Spec → keras.Model
    cnnbuild.train_spec("specs/lenet5.yaml", out="runs/lenet5")     # → run folder
    cnnbuild.export_run("runs/lenet5")                               # → verified SavedModel
    cnnbuild.predict_files("runs/lenet5/export/savedmodel", ["a.png"])
    cnnbuild.evaluate_run("runs/lenet5")
    cnnbuild.sample_run("runs/cgan"); cnnbuild.export_generator("runs/cgan")        # a GAN run
    cnnbuild.evaluate_gan("runs/cgan", classifier="runs/lenet5")
    cnnbuild.draw_spec(spec, "lenet5.svg"); cnnbuild.spec_schema()

Importing cnnbuild imports neither TensorFlow nor Keras; the stages that need them import
them when called.
"""
from .errors import Problem, SpecError, UsageError, Where
from .check import Report, format_table, infer
from .parse import Spec, load_spec, parse_spec

# The later stages load on first use, so `import cnnbuild` (and `cnnbuild check`) stays light.
# API name → (module, function); names differ from the modules' (cnnbuild.train is the module).
_LAZY = {"train_spec": ("train", "train"),
         "export_run": ("serve.export", "export_run"), "predict_files": ("serve.predict", "predict_files"),
         "evaluate_run": ("serve.evaluate", "evaluate_run"), "draw_spec": ("views.draw", "draw"),
         "spec_schema": ("views.schema", "spec_schema"),
         "sample_run": ("serve.sample", "sample_run"), "export_generator": ("serve.gan_export", "export_generator"),
         "evaluate_gan": ("serve.evaluate", "evaluate_gan")}


def build_model(spec, report=None):
    """The uncompiled Keras model of a spec: a Spec, or the path of a YAML file, loaded first
    (the assemble stage itself takes a Spec only)."""
    from .assemble import build_model as build
    loaded = spec if isinstance(spec, Spec) else load_spec(spec)
    if not isinstance(loaded, Spec):   # a GanSpec: two models, not one
        raise UsageError(f"{getattr(loaded, 'file', spec)} is a GAN spec (a generator and a discriminator), not one "
                         "model: build the pair with cnnbuild.assemble.gan.build_gan(cnnbuild.load_spec(path)), or "
                         "check it with cnnbuild.check")
    return build(loaded, report)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module, function = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), function)
    raise AttributeError(f"module 'cnnbuild' has no attribute {name!r}")


check = infer

__all__ = ["Problem", "Report", "Spec", "SpecError", "UsageError", "Where", "build_model", "check", "draw_spec",
           "evaluate_gan", "evaluate_run", "export_generator", "export_run", "format_table", "infer", "load_spec",
           "parse_spec", "predict_files", "sample_run", "spec_schema", "train_spec"]
