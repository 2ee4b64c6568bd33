"""The `cnnbuild` command. Each command is a declaration — its arguments, the function it
calls, how its result prints — in the COMMANDS table; `main` parses the arguments, calls the
function, prints the result, and prints every error in one place from its fields.

Exit status: 0 ok; 1 an invalid spec, a refusal of the data or a failed run (or an internal
error: one paragraph, the traceback only with CNNBUILD_DEBUG=1); 2 a usage error or an
unreadable file. TensorFlow starts only inside the stages that need it, after every refusal
that does not (tfstart.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable

from .records import record
from .errors import Failure, Problem, SpecError, UsageError, Where


@record(frozen=True)
class Arg:
    """One argparse argument: its names and keyword arguments, as add_argument takes them."""

    names: tuple
    options: dict


def arg(*names, **options) -> Arg:
    return Arg(names, options)


@record(frozen=True)
class Command:
    """A command: its help, its arguments, `run(args)` → a result, `show(result, args)` →
    the exit status (printing the result); `actions`: sub-commands (`data pack`); `runs`: a
    failure inside TensorFlow is the run's (one line), not a bug of cnnbuild's."""

    help: str
    arguments: tuple = ()
    run: Callable = None
    show: Callable = None
    actions: dict = None
    runs: bool = False     # a run inside TensorFlow: any other exception is the run failing, said in one line
    resumes: bool = False  # rerunning the same command line continues where an interrupted one stopped


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


SPEC = arg("spec", help="the YAML spec (e.g. specs/lenet5.yaml)")
BUDGET = (arg("--max-params", type=positive_int, help="refuse a model with more parameters than this"),
          arg("--max-memory", type=positive_int, metavar="BYTES",
              help="refuse a model whose activations for one image exceed this"))
SETS = arg("--set", dest="sets", action="append", metavar="KEY=VALUE",
           help="override a spec parameter (--set width=0.5) or any spec value (--set train.epochs=3)")
VARIANT = arg("--variant", metavar="NAME", help="read the spec with one of its variants: (named parameter values)")
CHOOSING = (VARIANT, SETS)   # what chooses the spec's parameter values, on every command that reads a spec


# ── what the commands call ─────────────────────────────────────────────────────────────────

def load(args, overrides=(), resolve=False):
    """(family, spec) of args.spec, its overrides and budget applied."""
    from . import families
    from .parse.overrides import settings
    overrides = list(overrides) + settings(getattr(args, "sets", None))
    spec = (families.resolve_spec if resolve else families.load_spec)(args.spec, overrides, getattr(args, "variant", None))
    family = families.of_spec(spec)
    return family, family.with_budget(spec, getattr(args, "max_params", None), getattr(args, "max_memory", None))


def check(args):
    try:
        family, spec = load(args)
        return family.check(spec, files_only=True), spec
    except (SpecError, UsageError) as e:
        if not args.json:
            raise
        from .check import Report     # under --json still one document: the problems, and the exit status
        problems = e.problems if isinstance(e, SpecError) else [Problem(Where(args.spec, 1, 1), e.message, e.hint)]
        print(json.dumps(chosen(Report.unparsed(problems).to_json(), None), indent=2, ensure_ascii=False))
        if isinstance(e, UsageError):
            print(f"cnnbuild check: {e}", file=sys.stderr)
        return e


def chosen(document: dict, spec) -> dict:
    """The check's document with the spec parameters' values it used (`spec_params`: "params"
    is the parameter count) and the variant named; null for a spec that did not parse."""
    return document | {"spec_params": dict(spec.params) if spec is not None else None,
                       "variant": spec.variant if spec is not None else None}


def show_check(result, args) -> int:
    checked, spec = result if isinstance(result, tuple) else (result, None)
    if isinstance(checked, Failure):
        return checked.status
    if isinstance(checked, SpecError):
        return 1
    if args.json:
        print(json.dumps(chosen(checked.document(), spec), indent=2, ensure_ascii=False))
        return 0 if checked.valid else 1
    print(checked.table())
    for w in checked.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for e in checked.errors:
        print(f"error: {e}", file=sys.stderr)
    if checked.valid:
        print(f"{args.spec}: ok")
    return 0 if checked.valid else 1


def summary(args) -> int:
    """Each network's static table beside Keras's summary of the built model."""
    family, spec = load(args)
    checked = family.check(spec, files_only=True)
    networks = family.networks(spec, checked)
    if len(networks) == 1:
        print(checked.table(), flush=True)
    # the network's own problems (a classifier's data problems are no matter here; a GAN's pair's are)
    problems = list(networks[0][2].errors) if len(networks) == 1 else [e for e in checked.errors if isinstance(e, Problem)]
    if problems:
        raise SpecError(problems)
    from .assemble import build_model, differences, keras_summary
    from .check import format_table
    from .tfstart import start_tensorflow
    start_tensorflow()
    status = 0
    for role, network, report in networks:
        if role:
            print(f"── {role} " + "─" * 60 + f"\n{format_table(report)}", flush=True)
        model = build_model(network, report)
        print(keras_summary(model))
        found = differences(report, model)
        if found:
            print(f"the static check and Keras DIFFER ({len(found)}):")
            for difference in found:
                print(f"  - {difference}")
            status = 1
        elif role:
            print(f"the static check and Keras agree on the {role}: {report.params:,} parameters, output "
                  f"{list(report.output)}\n")
        else:
            top = sum(1 for row in report.rows if row.depth == 0)
            print(f"the static check and Keras agree: {report.params:,} parameters ({report.trainable_params:,} "
                  f"trainable, {report.non_trainable_params:,} non-trainable), output {list(report.output)}, and the "
                  f"output shapes of all {top} top-level layers")
    return status


def train(args):
    """Check the spec and its data (before TensorFlow), then the family's training."""
    from .parse.overrides import given
    overrides = []
    if args.data is not None:
        overrides += [given("data.source", args.data, "--data"), given("data.path", None, "--data")]
    if args.epochs is not None:
        overrides.append(given("train.epochs", args.epochs, "--epochs"))
    if args.tensorboard:
        overrides.append(given("train.tensorboard", True, "--tensorboard"))
    from .families import checked_for_training
    family, spec = load(args, overrides, resolve=True)
    family, checked = checked_for_training(spec)
    return family.train(spec, checked, out=args.out)


def data_pack(args):
    from .tfstart import start_tensorflow
    from .sources import pack
    start_tensorflow()
    return pack(args.source, args.out, args.shards, args.size, data_dir=args.data_dir, split=args.split)


def show_pack(index, args) -> int:
    print(f"{args.out}: {index['count']:,} images, {len(index['classes'])} classes, "
          f"{len(index['shards'])} shard{'s' if len(index['shards']) != 1 else ''}"
          + (f", {len(index['skipped'])} unreadable files left out" if index["skipped"] else ""))
    return 0


def data_bench(args):
    from . import families
    from .parse.overrides import given
    from .tfstart import start_tensorflow
    from .train.data import bench_input
    overrides = [given("data.source", args.data, "--data"), given("data.path", None, "--data")] if args.data else []
    family, spec = load(args, overrides, resolve=True)
    if family is not families.DEFAULT:
        raise UsageError(f"{args.spec} is a {family.title} spec; data bench times a classifier spec's input pipeline "
                         "(give a spec with the same data: section)")
    families.checked_for_training(spec)
    start_tensorflow()
    return bench_input(spec, args.batches)


def show_bench(result, args) -> int:
    print(f"{result['data']}\n{result['pipeline']}\nfirst batch after {result['first_batch_seconds']:.2f}s; "
          f"{result['images']:,} images in {result['seconds']:.2f}s: {result['images_per_second']:,.0f} images/second")
    return 0


def export(args):
    """The run's family exports it; TensorFlow starts there, after the refusals that need none."""
    from . import families
    return families.of_run(args.run_dir).export(args.run_dir, args.out, args.format)


def sample(args):
    from . import families
    from .tfstart import start_tensorflow
    family = families.for_verb("sample", args.run_dir)
    start_tensorflow()
    return family.sample(args.run_dir, args.n, args.class_name, args.seed, args.out, trusted=args.trust_model)


def show_sample(result, args) -> int:
    written = f"a grid: {result['path']}" if result["grid"] else f"{len(result['files'])} files in {result['path']}"
    print(f"sampled {result['count']} images ({result['what']}, seed {result['seed']}, "
          f"{'×'.join(map(str, result['image_shape']))}) from {result['run']} → {written}")
    return 0


def predict(args):
    from . import families
    from .tfstart import start_tensorflow
    if args.top < 1:
        raise UsageError(f"--top {args.top}: must be at least 1 (the number of best classes to show)")
    family = families.for_verb("predict", args.model)
    start_tensorflow()
    return family.predict(args.model, args.images, args.top, args.out, batch_size=args.batch_size,
                          trusted=args.trust_model)


def show_predictions(predictions, args) -> int:
    for prediction in predictions:
        if prediction.error:
            print(f"error: {prediction.error}", file=sys.stderr)
    if args.json:
        print(json.dumps([prediction.to_json() for prediction in predictions], indent=2, ensure_ascii=False))
    else:
        for prediction in predictions:
            if not prediction.error:
                print(prediction.text())
    failed = sum(1 for prediction in predictions if prediction.error)
    if failed:
        print(f"{failed} of {len(predictions)} file{'s' if len(predictions) != 1 else ''} could not be read",
              file=sys.stderr)
    return 2 if failed else 0


def evaluate(args):
    from . import families
    from .tfstart import start_tensorflow
    family = families.of_run(args.run_dir)
    start_tensorflow()
    return family.evaluate(args.run_dir, {"data": args.data, "out": args.out, "classifier": args.classifier,
                                          "n": args.n, "seed": args.seed, "trusted": args.trust_model})


def show_evaluated(result, args) -> int:
    print(json.dumps(result.document, indent=2, ensure_ascii=False) if args.json else result.text)
    return 0


def draw(args) -> int:
    """One drawing per network (FILE_ROLE.svg when the spec holds several), then the errors."""
    from pathlib import Path

    from .views.draw import draw as draw_network
    family, spec = load(args)
    out = args.out or f"{spec.name}.svg"
    checked = family.check(spec, files_only=True)
    networks = family.networks(spec, checked)
    stem, suffix = Path(out).with_suffix(""), Path(out).suffix or ".svg"
    for role, network, _ in networks:
        drawn = f"{stem}_{role}{suffix}" if role else out
        draw_network(network, drawn)
        if role:
            print(f"wrote {drawn}")
    errors = [p for _, _, report in networks for p in report.errors] if len(networks) == 1 else checked.errors
    for problem in errors:
        print(f"error: {problem}")
    if len(networks) == 1:
        print(f"wrote {out}")
    return 0 if not errors else 1


def compare(args):
    from .choose.compare import compare as run
    if args.variants not in (None, "all"):
        raise UsageError(f"--variants {args.variants}: only 'all' (name single variants with --variant NAME)")
    return run(args.specs, args.epochs, args.out, variants=args.variants or args.variant)


def show_compare(rows, args) -> int:
    from .choose.compare import CSV, PNG, format_rows
    print(format_rows(rows))
    for row in rows:
        for note in row.notes:
            print(f"note: {row.figures.name}: {note}", file=sys.stderr)
    if args.out:
        print(f"wrote {os.path.join(args.out, CSV)}" + (f" and {os.path.join(args.out, PNG)}" if args.epochs else ""))
    return 0 if all(row.figures.valid for row in rows) else 1


def scale(args):
    from .choose.candidates import Budget
    from .choose.scale import PAPER, scale as run
    coefficients = tuple(args.coefficients) if args.coefficients else PAPER
    return run(args.spec, Budget(args.max_params, args.max_macs, args.max_memory), coefficients,
               getattr(args, "variant", None), args.out)


def show_scale(result, args) -> int:
    from .choose.scale import format_scaled
    print(format_scaled(result))
    return 0


def tune(args):
    from .tfstart import start_tensorflow
    start_tensorflow()          # keras-tuner imports TensorFlow: its start-up log hidden first
    from .choose.candidates import Budget
    from .choose.tune import tune as run
    return run(args.spec, args.trials, args.epochs, args.out, args.algorithm,
               Budget(args.max_params, args.max_macs, args.max_memory), args.seed)


def show_tune(summary, args) -> int:
    from .choose.tune import format_summary
    print(format_summary(summary))
    return 0 if "best" in summary or os.environ.get("KERASTUNER_ORACLE_IP") else 1


def maps(args):
    """The image's feature maps (or, with --filters, the kernels) after the chosen layers of a
    spec's untrained network or a run's trained model, as one labelled PNG."""
    from pathlib import Path

    from . import families, runfolder
    from .serve.maps import MAX_MAPS, feature_panels, kernel_panels
    from .tfstart import start_tensorflow
    from .views.maps import write_panels
    source = Path(args.source)
    run = source.is_dir()
    if run and not (source / runfolder.MODEL).is_file():
        raise UsageError(f"{source}: no {runfolder.MODEL} in it; maps reads a trained run's model (or a spec file)")
    if not args.filters and not args.image:
        raise UsageError("give an IMAGE to draw its feature maps, or --filters to draw the kernels")
    spec_path = source / runfolder.SPEC if run else source
    network, report = None, None
    if spec_path.is_file():
        spec = families.load_spec(spec_path)
        family = families.of_spec(spec)
        checked = family.check(spec, files_only=True)
        found = family.networks(spec, checked)
        roles = [role for role, _, _ in found]
        if len(found) > 1 and args.network not in roles:
            raise UsageError(f"{spec_path}: holds {len(found)} networks ({', '.join(roles)}); choose one with "
                             f"--network {roles[-1]}")
        _, network, report = next(n for n in found if len(found) == 1 or n[0] == args.network)
        problems = [e for e in report.errors if isinstance(e, Problem)]
        if problems and not run:
            raise SpecError(problems)
    elif not args.layer:
        raise UsageError(f"{spec_path}: missing; name the layers to draw with --layer NAME")
    start_tensorflow()
    if run:
        from .serve.export import load_run
        model = load_run(source).model
    else:
        from .assemble import build_model
        model = build_model(network, report)
    names = {layer.name for layer in model.layers}
    layers = args.layer or [row.name for row in report.rows if row.depth == 0 and len(row.output) == 3
                            and row.name in names and row.kind != "input"]
    if args.filters:
        layers = args.layer or [name for name in layers if any(w.ndim == 4 for w in model.get_layer(name).get_weights())]
    if not layers:
        raise UsageError(f"{args.source}: no layer with {'a kernel' if args.filters else 'a map output'} to draw",
                         "name one with --layer NAME")
    limit = args.max_maps or MAX_MAPS
    panels = kernel_panels(model, layers, limit) if args.filters else feature_panels(model, args.image, layers, limit)
    out = Path(args.out or f"{Path(args.image).stem if args.image and not args.filters else 'filters'}_maps.png")
    write_panels(panels, out)
    return [f"wrote {out}: " + "; ".join(panel.header for panel in panels)]


def schema(args):
    from .families import spec_schema
    sys.stdout.write(json.dumps(spec_schema(), indent=2, ensure_ascii=False) + "\n")
    return 0


def examples() -> dict:
    """{name: file} of the specs shipped with the package: the examples and the zoo."""
    from importlib.resources import files
    package = files("cnnbuild")
    found = {}
    for folder in ("examples", "zoo"):
        found.update({entry.name[:-len(".yaml")]: entry for entry in package.joinpath(folder).iterdir()
                      if entry.name.endswith(".yaml")})
    return dict(sorted(found.items()))


def init(args):
    """Write a shipped example spec out as NAME.yaml (its `name:` set to NAME), so an
    installed cnnbuild can run its quick start; never over an existing file."""
    import re
    from pathlib import Path
    shipped = examples()
    if args.source not in shipped:
        raise UsageError(f"--from {args.source}: no such example",
                         "one of " + ", ".join(shipped))
    target = Path(args.name if args.name.endswith((".yaml", ".yml")) else f"{args.name}.yaml")
    name = target.name.rsplit(".", 1)[0]
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise UsageError(f"{args.name}: a spec's name is a letter then letters, digits or _",
                         f"e.g. cnnbuild init {re.sub(r'[^A-Za-z0-9_]', '_', name).lstrip('_0123456789') or 'mynet'}")
    if target.exists():
        raise UsageError(f"{target} already exists; cnnbuild init never overwrites a file",
                         "choose another NAME, or remove the file first")
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent}: no such folder", "create it first, or give a NAME in an existing folder")
    text = shipped[args.source].read_text(encoding="utf-8")
    text = re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.M)
    partial = target.with_name(f".{target.name}.partial")   # a killed init leaves no half-written spec
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
    return [f"wrote {target} (from the example {args.source}); next: cnnbuild check {target}"]


def show_lines(lines, args) -> int:
    print("\n".join(lines))
    return 0


def show_status(result, args) -> int:
    return result or 0


def show_metrics(metrics, args) -> int:
    return 0 if metrics is not None else 1


TRUST = arg("--trust-model", action="store_true",
            help="run a SavedModel even when its graph holds ops other than inference ops (file, network, process, "
                 "py_func, print or summary ops): only for a model whose maker you trust, since a SavedModel is a "
                 "program")

# ── the commands ───────────────────────────────────────────────────────────────────────────

COMMANDS = {
    "check": Command("check a spec without TensorFlow: shapes, rules, parameters, MACs, receptive fields",
                     (SPEC, arg("--json", action="store_true", help="print one JSON document"), *CHOOSING, *BUDGET),
                     check, show_check),
    "summary": Command("build the Keras model and print the static table beside Keras's summary",
                       (SPEC, *CHOOSING, *BUDGET), summary, show_status),
    "train": Command("train a spec's model on its data; resumes an unfinished run folder", (
        SPEC, arg("--out", help="run folder (default runs/NAME/)"),
        arg("--epochs", type=int, help="override train.epochs"),
        arg("--data", help="override data.source (digits, shapes, a directory, an .npz file, …)"), *CHOOSING,
        arg("--tensorboard", action="store_true",
            help="write TensorBoard event files in RUN/tensorboard/ (train.tensorboard: true)"), *BUDGET),
        train, show_metrics, runs=True, resumes=True),
    "data": Command("pack a dataset into TFRecord shards, or time the input pipeline alone", actions={
        "pack": Command("a class-folder directory, an .npz or a tfds dataset → sharded TFRecord files + index.json", (
            arg("source", help="a class-folder directory, an .npz file, or tfds:NAME (prepared in --data-dir)"),
            arg("--data-dir", help="for tfds:NAME: the tfds data_dir it was prepared in"),
            arg("--split", default="train", help="for tfds:NAME: the split to pack (default train)"),
            arg("--out", required=True, help="the folder to write (must not exist)"),
            arg("--shards", type=positive_int, help="how many shard files (default: one per 2,000 images)"),
            arg("--size", type=positive_int, nargs=2, metavar=("H", "W"), help="resize every image (stored as PNG)")),
            data_pack, show_pack),
        "bench": Command("time a spec's input pipeline (read, decode, augment; no model)", (
            arg("spec", help="the YAML spec whose data section to read"),
            arg("--batches", type=positive_int, default=50, help="batches to time (default 50)"),
            arg("--data", help="override data.source")), data_bench, show_bench)}),
    "export": Command("export a trained run as a verified SavedModel (or keras, onnx, tflite)", (
        arg("run_dir", metavar="RUN_DIR", help="a run folder written by cnnbuild train (e.g. runs/lenet5); of a GAN "
                                               "run, the generator is exported (SavedModel)"),
        arg("--out", help="destination (default RUN_DIR/export/FORMAT)"),
        arg("--format", default="savedmodel", choices=["savedmodel", "keras", "onnx", "tflite"],
            help="savedmodel (default), keras, onnx or tflite")), export, show_lines),
    "sample": Command("pictures from a trained GAN: a PNG grid, or one PNG per sample", (
        arg("run_dir", metavar="RUN", help="a GAN run folder (cnnbuild train GAN_SPEC) or its export"),
        arg("--n", type=positive_int, default=64,
            help="samples (default 64; a conditional run without --class makes ⌈N/K⌉ of each class)"),
        arg("--class", dest="class_name", metavar="K", help="of a conditional run: the class, by index or name"),
        arg("--seed", type=int, default=0, help="the noise seed (default 0: the same pictures every time)"),
        arg("--out", metavar="grid.png | DIR/", help="the grid PNG (default RUN/sample.png), or a folder (existing, "
                                                     "or ending in /) for one PNG per sample"), TRUST), sample, show_sample),
    "predict": Command("classify image files with an export (or a run folder)", (
        arg("model", metavar="EXPORT_OR_RUN_DIR",
            help="an export folder (RUN_DIR/export/savedmodel) or a run folder (exported first if needed)"),
        arg("images", nargs="+", metavar="IMAGE", help="png, jpg, bmp or gif files, folders of them, or quoted globs "
                                                       "('scans/**/*.png')"),
        arg("--batch-size", type=positive_int, default=32, metavar="N",
            help="images sent through the model at once (default 32): memory stays bounded however many files"),
        arg("--top", type=int, default=1, metavar="K", help="show the K most likely classes (default 1)"),
        arg("--json", action="store_true", help="print a JSON list, one object per image"),
        arg("--out", default="predictions", metavar="DIR",
            help="where a segmentation model's masks and overlays go (default predictions/)"), TRUST),
        predict, show_predictions),
    "evaluate": Command("accuracy, per-class precision and recall, confusion matrix (of a GAN run: its samples, "
                        "classified with --classifier)", (
        arg("run_dir", metavar="RUN_DIR", help="a run folder written by cnnbuild train (e.g. runs/lenet5)"),
        arg("--data", help="evaluate on every image of another source (a class-folder directory, an .npz, digits, …) "
                           "instead of the run's validation data"),
        arg("--out", metavar="FILE.png", help="the confusion-matrix picture (default RUN_DIR/confusion_matrix.png; "
                                              "the figures go beside it as .json)"),
        arg("--json", action="store_true", help="print the figures as one JSON document"),
        arg("--classifier", metavar="RUN_OR_EXPORT",
            help="of a GAN run: score its samples with this classifier (trained by cnnbuild on the same data)"),
        arg("--n", type=positive_int, default=1000, help="of a GAN run: samples to classify (default 1000)"),
        arg("--seed", type=int, default=0, help="of a GAN run: the noise seed (default 0)"), TRUST),
        evaluate, show_evaluated),
    "draw": Command("draw the architecture as SVG or PNG (pure Python)", (
        SPEC, arg("--out", help="FILE.svg or FILE.png (default NAME.svg; of a GAN spec, FILE_generator.svg and "
                                "FILE_discriminator.svg)"), *CHOOSING), draw, show_status),
    "init": Command("write an example spec to start from (shipped with cnnbuild) as NAME.yaml", (
        arg("name", metavar="NAME", help="the spec to write: NAME.yaml in the current folder (or a path ending .yaml)"),
        arg("--from", dest="source", default="lenet5", metavar="EXAMPLE",
            help="the example to copy (default lenet5; image_folder for your own class folders; "
                 "any of specs/ or the zoo: unet, dcgan_digits, resnet50, …)")), init, show_lines),
    "maps": Command("draw what a network sees: an image's feature maps after chosen layers (or, with --filters, their "
                    "kernels) as one labelled PNG", (
        arg("source", metavar="SPEC_OR_RUN", help="a spec (its untrained network: fixed kernels are exact) or a "
                                                  "trained run folder (its model.keras)"),
        arg("image", metavar="IMAGE", nargs="?", help="png, jpg, bmp or gif (not needed with --filters)"),
        arg("--layer", action="append", metavar="NAME", help="a layer to draw (repeat for several; default: every "
                                                              "top-level layer with a map output)"),
        arg("--filters", action="store_true", help="draw the layers' kernels, one picture per filter"),
        arg("--network", metavar="ROLE", help="of a spec with several networks: which one (e.g. discriminator)"),
        arg("--max-maps", type=positive_int, metavar="N", help="maps (or filters) drawn per layer (default 32)"),
        arg("--out", metavar="FILE.png", help="the picture (default IMAGE_maps.png, or filters_maps.png)")),
        maps, show_lines),
    "schema": Command("print the JSON Schema of the spec language (for editors)", (), schema, show_status),
    "compare": Command("compare specs: parameters, MACs, activation memory, receptive field; with --epochs, "
                       "validation accuracy against compute (CSV and chart)", (
        arg("specs", nargs="+", metavar="SPEC", help="the YAML specs to compare"),
        arg("--variant", action="append", metavar="NAME", help="compare this variant of each spec (repeatable)"),
        arg("--variants", metavar="all", help="compare every variant each spec declares"),
        arg("--epochs", type=positive_int, help="train each spec this many epochs on its data (default: static only)"),
        arg("--out", metavar="DIR", help="write DIR/compare.csv (and DIR/compare.png with --epochs); trained runs go "
                                         "in DIR/runs/")), compare, show_compare),
    "scale": Command("scale a spec's depth, width and resolution parameters by EfficientNet's compound rule to the "
                     "largest size within a budget, by static checks alone", (
        SPEC, arg("--max-macs", type=positive_int, help="the most multiply-adds per image"), *BUDGET,
        arg("--coefficients", type=float, nargs=3, metavar=("ALPHA", "BETA", "GAMMA"),
            help="depth, width and resolution growth per unit of φ (default 1.2 1.1 1.15, as EfficientNet)"),
        arg("--variant", metavar="NAME", help="scale from one of the spec's variants"),
        arg("--out", metavar="FILE.yaml", help="write the scaled spec (a plain spec: the values written in)")),
        scale, show_scale),
    "tune": Command("search a spec's `search:` space with keras-tuner; candidates over budget or invalid are refused "
                    "by the static check and never trained", (
        SPEC, arg("--trials", type=positive_int, default=10, help="trials to train (refused candidates do not count; "
                                                                   "default 10)"),
        arg("--epochs", type=positive_int, help="train each trial this many epochs (default: the spec's)"),
        arg("--out", metavar="DIR", help="the search's folder: keras-tuner's state, trials.csv, best.yaml, "
                                         "trials/ (default tune/NAME); rerun to continue"),
        arg("--algorithm", default="random", choices=["random", "bayesian", "hyperband"],
            help="keras-tuner's oracle (default random)"),
        arg("--max-macs", type=positive_int, help="refuse candidates with more multiply-adds per image than this"),
        arg("--seed", type=int, default=0, help="the oracle's seed (default 0)"), *BUDGET), tune, show_tune,
        runs=True),
}


# ── arguments, and errors in one place ─────────────────────────────────────────────────────

class _Version(argparse.Action):
    """--version, read from the installed package only when asked (importlib.metadata costs
    ~25 ms, a sixth of `cnnbuild check`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version
        try:
            found = version("cnnbuild")
        except PackageNotFoundError:   # run from a checkout without installing
            found = "unknown (not installed)"
        print(f"cnnbuild {found}")
        parser.exit()


def _add(parser, command: Command):
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own start-up log (hidden unless asked for; also CNNBUILD_DEBUG=1)")
    for argument in command.arguments:
        parser.add_argument(*argument.names, **argument.options)
    if command.actions:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        for name, action in command.actions.items():
            _add(actions.add_parser(name, help=action.help, description=action.help), action)


def parser_for(argv) -> argparse.ArgumentParser:
    """The parser; only the invoked command's parser is built (an argparse parser costs ~1 ms,
    a tenth of `cnnbuild check` for all of them). Without a known command (`cnnbuild`,
    `cnnbuild --help`, a misspelt command) every command is declared, for the list and the error."""
    parser = argparse.ArgumentParser(prog="cnnbuild", description="Describe, check, train and ship a CNN from a YAML spec.")
    parser.add_argument("--version", action=_Version, nargs=0, help="print cnnbuild's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    asked = next((a for a in argv if not a.startswith("-")), None)
    for name, command in COMMANDS.items():
        if asked not in COMMANDS or asked == name:
            _add(sub.add_parser(name, help=command.help, description=command.help), command)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser_for(argv).parse_args(argv)
    if not args.command:
        parser_for([]).print_help()
        return 2
    command = COMMANDS[args.command]
    if command.actions:
        command = command.actions[args.action]
    if args.verbose:
        from . import tfstart
        tfstart.SHOW_LOG = True
    try:
        status = command.show(command.run(args), args) or 0
        sys.stdout.flush()     # inside the try: a reader that has gone is noticed here, not at exit
        return status
    except BrokenPipeError:   # `cnnbuild check … | head`: the reader has stopped, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nothing more to flush at exit
        return 141                                                        # 128 + SIGPIPE, as `seq 1 100000 | head` ends
    except SpecError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except Failure as e:
        print(failure_text(args.command, e), file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print(interrupted_text(args.command, command, argv), file=sys.stderr)
        return 130
    except Exception as e:   # a failure inside TensorFlow, or a bug in cnnbuild: one paragraph, never a traceback
        if os.environ.get("CNNBUILD_DEBUG"):
            raise
        if command.runs:
            from .train.strategy import tf_error_text
            print(f"cnnbuild {args.command}: failed: {tf_error_text(e)}\n  (set CNNBUILD_DEBUG=1 to see the "
                  "traceback)", file=sys.stderr)
        else:
            print(internal_error(args.command, e), file=sys.stderr)
        return 1


def interrupted_text(name: str, command: Command, argv: list) -> str:
    """What Ctrl-C leaves, and for a command that resumes, the command line that resumes it
    (the same one: the run folder keeps every completed epoch).

    >>> print(interrupted_text("train", COMMANDS["train"], ["train", "specs/lenet5.yaml", "--out", "runs/my try"]))
    cnnbuild train: interrupted; the run folder keeps every completed epoch
      hint: to resume, run the same command again: cnnbuild train specs/lenet5.yaml --out 'runs/my try'
    """
    if not command.resumes:
        return f"cnnbuild {name}: interrupted"
    import shlex
    return (f"cnnbuild {name}: interrupted; the run folder keeps every completed epoch\n"
            f"  hint: to resume, run the same command again: cnnbuild {shlex.join(argv)}")


def failure_text(command: str, error: Failure) -> str:
    """`cnnbuild COMMAND: error: what` and, on its own line, the hint — from the error's fields.
    A usage error reads as the command's own sentence, without "error:"."""
    prefix = "" if isinstance(error, UsageError) else "error: "
    return f"cnnbuild {command}: {prefix}{error.message}" + (f"\n  hint: {error.hint}" if error.hint else "")


MAX_MESSAGE = 500   # characters of the exception's text quoted (Keras's can run to pages)


def internal_error(command: str, error: Exception) -> str:
    """One paragraph for an exception nothing else caught: which command, what was raised,
    what to do about it."""
    message = " ".join(str(error).split())
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "…"
    raised = f"{type(error).__name__}: {message or '(no message)'}"
    if not raised.endswith((".", "!", "?", "…")):
        raised += "."
    return (f"cnnbuild {command}: internal error: {raised} "
            f"This is a bug in cnnbuild, not something the checker found in your spec; please report it with the "
            f"spec and this command line. Run again with CNNBUILD_DEBUG=1 to see the traceback.")


if __name__ == "__main__":
    sys.exit(main())
