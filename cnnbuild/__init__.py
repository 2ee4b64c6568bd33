"""cnnbuild: describe a CNN in YAML, check it instantly, build the identical Keras model,
train it, export it. The Python API is the command line's:

    spec = cnnbuild.load_spec("specs/lenet5.yaml")    # YAML → Spec (validated; a GAN spec → GanSpec)
    report = cnnbuild.check(spec)                    # Spec → Report (no TensorFlow)
    model = cnnbuild.build_model(spec)               # Spec → keras.Model
    cnnbuild.train_spec("specs/lenet5.yaml", out="runs/lenet5")     # → run folder
    cnnbuild.export_run("runs/lenet5")                               # → verified SavedModel
    cnnbuild.predict_files("runs/lenet5/export/savedmodel", ["a.png"])
    cnnbuild.evaluate_run("runs/lenet5")
    cnnbuild.sample_run("runs/cgan"); cnnbuild.export_run("runs/cgan")           # a GAN run: its generator
    cnnbuild.evaluate_run("runs/cgan", classifier="runs/lenet5")
    cnnbuild.draw_spec(spec, "lenet5.svg"); cnnbuild.spec_schema()

Every call asks the families table (cnnbuild/families/) what a spec or a run folder is.
Importing cnnbuild imports neither TensorFlow nor Keras; the stages that need them import
them when called.
"""
from pathlib import Path

from .check import Report, format_table
from .errors import Problem, SpecError, UsageError, Where
from .families import load_spec, parse_spec, resolve_spec
from .parse import Spec


def _spec(spec, overrides=(), resolve=False, variant=None):
    """A spec object, or the path of a YAML file, loaded first (with `variant`, one of its variants)."""
    from . import families
    if isinstance(spec, (str, Path)):
        return (resolve_spec if resolve else load_spec)(spec, overrides, variant)
    families.of_spec(spec)
    return spec


def check(spec):
    """Spec → its Report (a GAN spec → a GanReport, both networks and the pair); no TensorFlow."""
    from . import families
    spec = _spec(spec)
    checked = families.of_spec(spec).check(spec, files_only=True)
    return getattr(checked, "report", checked)


infer = check


def build_model(spec, report=None):
    """The uncompiled Keras model of a one-network spec (a Spec, or the path of a YAML file)."""
    from . import families
    from .assemble import build_model as build
    spec = _spec(spec)
    family = families.of_spec(spec)
    if family is not families.DEFAULT:
        raise UsageError(f"{getattr(spec, 'file', spec)} is a {family.title} spec (several networks), not one model: "
                         "build its networks with cnnbuild.families.of_spec(spec).networks(spec, cnnbuild.check(spec)), "
                         "or check it with cnnbuild.check")
    return build(spec, report)


def train_spec(spec, out=None, overrides=(), stdout=None, variant=None):
    """Train a spec (a path, resolved with `overrides` and `variant`, or a spec from resolve_spec)
    into a run folder; returns the final metrics. The spec and its data are checked first, without TensorFlow."""
    from . import families
    spec = _spec(spec, overrides, resolve=True, variant=variant)
    family, checked = families.checked_for_training(spec)
    return family.train(spec, checked, out=out, stdout=stdout)


def export_run(run_dir, out=None, format="savedmodel") -> list:
    """Export a run (a classifier's model, a GAN's generator), verified by reloading; returns what
    `cnnbuild export` prints."""
    from . import families
    return families.of_run(run_dir).export(run_dir, out, format)


def evaluate_run(run_dir, data=None, classifier=None, n=1000, seed=0, out=None, trust_model=False):
    """Evaluate a run (a classifier on its validation data or `data`; a GAN's samples with `classifier`).
    `trust_model`: run a SavedModel even when its graph holds more than inference ops."""
    from . import families
    return families.of_run(run_dir).evaluate(run_dir, {"data": data, "classifier": classifier, "n": n, "seed": seed,
                                                       "out": out, "trusted": trust_model})


def predict_files(model, images, top=1, out="predictions", trust_model=False):
    from . import families
    return families.for_verb("predict", model).predict(model, images, top, out, trusted=trust_model)


def sample_run(run, count=64, class_name=None, seed=0, out=None, trust_model=False) -> dict:
    from . import families
    return families.for_verb("sample", run).sample(run, count, class_name, seed, out, trusted=trust_model)


def compare_specs(paths, epochs=None, out=None, variants=None) -> list:
    """`cnnbuild compare`: a row per spec (or variant) with its static figures; with `epochs`,
    each trained and its validation accuracy measured; DIR/compare.csv and compare.png with `out`."""
    from .choose.compare import compare
    return compare(paths, epochs, out, variants=variants)


def tune_spec(path, trials=10, epochs=None, out=None, algorithm="random", max_params=None, max_macs=None,
              max_memory=None, seed=0) -> dict:
    """`cnnbuild tune`: the spec's `search:` space run by keras-tuner, candidates over budget refused statically."""
    from .choose.candidates import Budget
    from .choose.tune import tune
    return tune(path, trials, epochs, out, algorithm, Budget(max_params, max_macs, max_memory), seed)


def scale_spec(path, max_macs=None, max_params=None, max_memory=None, variant=None, out=None):
    """`cnnbuild scale`: the spec's depth, width and resolution scaled by EfficientNet's compound rule to the budget."""
    from .choose.candidates import Budget
    from .choose.scale import scale
    return scale(path, Budget(max_params, max_macs, max_memory), variant=variant, out=out)


def draw_spec(spec, out):
    from .views.draw import draw
    return draw(_spec(spec), out)


def spec_schema() -> dict:
    from .families import spec_schema as schema
    return schema()


__all__ = ["Problem", "Report", "Spec", "SpecError", "UsageError", "Where", "build_model", "check", "compare_specs",
           "draw_spec", "scale_spec", "tune_spec",
           "evaluate_run", "export_run", "format_table", "infer", "load_spec", "parse_spec", "predict_files",
           "resolve_spec", "sample_run", "spec_schema", "train_spec"]
