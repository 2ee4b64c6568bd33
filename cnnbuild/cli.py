"""The `cnnbuild` command: parse arguments, call one function, print. Exit status: 0 ok,
1 invalid spec (or failed run, or an internal error: one paragraph, the traceback only with
CNNBUILD_DEBUG=1), 2 usage error or unreadable file."""
from __future__ import annotations

import argparse
import os
import re
import sys

from .errors import SpecError, UsageError

COMMANDS = {}


def command(name, help):
    def add(fn):
        COMMANDS[name] = (fn, help)
        return fn
    return add


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("cnnbuild")
    except PackageNotFoundError:   # run from a checkout without installing
        return "unknown (not installed)"


class _Version(argparse.Action):
    """--version, read from the installed package only when asked (importlib.metadata costs
    ~25 ms, a sixth of `cnnbuild check`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"cnnbuild {_version()}")
        parser.exit()


def _parser():
    parser = argparse.ArgumentParser(prog="cnnbuild", description="Describe, check, train and ship a CNN from a YAML spec.")
    parser.add_argument("--version", action=_Version, nargs=0, help="print cnnbuild's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (fn, help) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--verbose", action="store_true",
                       help="show TensorFlow's own start-up log (hidden unless asked for; also CNNBUILD_DEBUG=1)")
        fn(p, None)
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _budget_args(p):
    p.add_argument("--max-params", type=_positive_int, help="refuse a model with more parameters than this")
    p.add_argument("--max-memory", type=_positive_int, metavar="BYTES",
                   help="refuse a model whose activations for one image exceed this")


def _load(path, args):
    from .parse import load_spec, with_budget
    from .parse.overrides import settings
    spec = load_spec(path, overrides=settings(getattr(args, "sets", None)))
    return with_budget(spec, getattr(args, "max_params", None), getattr(args, "max_memory", None))


# What TensorFlow 2.21 prints on every start, before cnnbuild says a word: absl's notice, the
# oneDNN and CPU-instruction notes, and on a machine without a GPU the CUDA probes. Anything
# else it prints while starting still comes through.
TENSORFLOW_NOISE = re.compile("|".join((
    r"All log messages before absl::InitializeLog\(\) is called", r"oneDNN custom operations are on",
    r"Could not find cuda drivers", r"failed call to cuInit", r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered", r"TF-TRT Warning", r"This TensorFlow binary is optimized",
    r"rebuild TensorFlow with the appropriate compiler flags", r"Attempting to register factory for plugin",
    r"cuda_executor|cuda_platform|cudart_stub|cuda_dnn|cuda_fft|cuda_blas")))


def _quiet_tensorflow(args):
    """Start TensorFlow with its start-up log hidden. Its C++ side writes to file descriptor 2
    before any setting is read (TF_CPP_MIN_LOG_LEVEL does not reach absl's early messages), so
    the import and the first device query (which probes CUDA) run with descriptor 2 pointed at
    a temporary file; afterwards every line that is not known noise is passed on."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")    # what TensorFlow does read: its later C++ log
    if getattr(args, "verbose", False) or os.environ.get("CNNBUILD_DEBUG") or "tensorflow" in sys.modules:
        return
    import tempfile
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            import tensorflow as tf
            tf.config.list_physical_devices("GPU")
            import keras  # noqa: F401  (its first import logs too)
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if line.strip() and (failed or not TENSORFLOW_NOISE.search(line)):
                    print(line, file=sys.stderr)


def _failed(command: str, error: Exception) -> int:
    """A run that failed inside TensorFlow (not a bug of ours, not the user's spec): one line."""
    if os.environ.get("CNNBUILD_DEBUG"):
        raise error
    from .train.strategy import tf_error_text
    print(f"cnnbuild {command}: failed: {tf_error_text(error)}\n  (set CNNBUILD_DEBUG=1 to see the traceback)",
          file=sys.stderr)
    return 1


@command("check", "check a spec without TensorFlow: shapes, rules, parameters, MACs, receptive fields")
def check(p, args):
    if args is None:
        p.add_argument("spec", help="the YAML spec (e.g. specs/lenet5.yaml)")
        p.add_argument("--json", action="store_true", help="print one JSON document")
        _budget_args(p)
        return
    from .check.report import Report, format_table, infer
    try:
        spec = _load(args.spec, args)
    except SpecError as e:
        if args.json:
            print(Report.unparsed(e.problems).json())
            return 1
        raise
    except UsageError as e:   # an unreadable file: under --json still one document, and exit 2
        if args.json:
            from .errors import Problem, Where
            message, _, hint = str(e).partition("\n  hint: ")
            print(Report.unparsed([Problem(Where(args.spec, 1, 1), message, hint)]).json())
            print(f"cnnbuild check: {e}", file=sys.stderr)
            return 2
        raise
    from .parse.gan import GanSpec
    if isinstance(spec, GanSpec):   # both networks, then the pair (check/gan.py)
        return _check_gan(spec, args)
    report = infer(spec)
    from .sources import data_problems
    data_errors = data_problems(spec.data, report.output, files_only=True) if report.valid else []
    if args.json:
        import json
        # "valid" answers the exit code's question: a spec whose data is missing does not train
        document = report.to_json() | ({"valid": False, "data_errors": data_errors} if data_errors else {})
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(format_table(report))
        for w in report.warnings:
            print(f"warning: {w}", file=sys.stderr)
        for e in report.errors:
            print(f"error: {e}", file=sys.stderr)
        for problem in data_errors:
            print(f"error: data: {problem}", file=sys.stderr)
        if report.valid and not data_errors:
            print(f"{args.spec}: ok")
    return 0 if report.valid and not data_errors else 1


def _check_gan(spec, args) -> int:
    """`cnnbuild check GAN.yaml`: both networks' tables, then every error; or one JSON document."""
    from .check.gan import format_gan_table, infer_gan
    report = infer_gan(spec)
    if args.json:
        print(report.json())
        return 0 if report.valid else 1
    print(format_gan_table(report))
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for e in report.errors:
        print(f"error: {e}", file=sys.stderr)
    if report.valid:
        print(f"{args.spec}: ok")
    return 0 if report.valid else 1


@command("summary", "build the Keras model and print the static table beside Keras's summary")
def summary(p, args):
    if args is None:
        p.add_argument("spec", help="the YAML spec (e.g. specs/lenet5.yaml)")
        _budget_args(p)
        return
    from .assemble import build_model, differences, keras_summary
    from .check.report import format_table, infer
    from .parse.gan import GanSpec
    spec = _load(args.spec, args)
    if isinstance(spec, GanSpec):   # each network's body, as any spec (the label's one-hot and join are not in it)
        return _summary_gan(spec, args)
    report = infer(spec)
    print(format_table(report), flush=True)
    if not report.valid:
        raise SpecError(report.errors)
    _quiet_tensorflow(args)
    model = build_model(spec, report)
    print(keras_summary(model))
    found = differences(report, model)
    if found:
        print(f"the static check and Keras DIFFER ({len(found)}):")
        for difference in found:
            print(f"  - {difference}")
        return 1
    top = sum(1 for row in report.rows if row.depth == 0)
    print(f"the static check and Keras agree: {report.params:,} parameters ({report.trainable_params:,} trainable, "
          f"{report.non_trainable_params:,} non-trainable), output {list(report.output)}, and the output shapes of "
          f"all {top} top-level layers")
    return 0


def _summary_gan(spec, args) -> int:
    """`cnnbuild summary GAN.yaml`: the static table beside Keras's summary, for each network's body."""
    from .assemble import build_model, differences, keras_summary
    from .check.gan import infer_gan
    from .check.report import format_table
    report = infer_gan(spec)
    if not report.valid:
        raise SpecError(report.errors)
    _quiet_tensorflow(args)
    status = 0
    for role, network in (("generator", spec.generator), ("discriminator", spec.discriminator)):
        static = getattr(report, role)
        print(f"── {role} " + "─" * 60 + f"\n{format_table(static)}", flush=True)
        model = build_model(network, static)
        print(keras_summary(model))
        found = differences(static, model)
        for difference in found:
            print(f"  - the static check and Keras DIFFER: {difference}")
        if not found:
            print(f"the static check and Keras agree on the {role}: {static.params:,} parameters, output "
                  f"{list(static.output)}\n")
        status = status or (1 if found else 0)
    return status


@command("train", "train a spec's model on its data; resumes an unfinished run folder")
def train(p, args):
    if args is None:
        p.add_argument("spec", help="the YAML spec (e.g. specs/lenet5.yaml)")
        p.add_argument("--out", help="run folder (default runs/NAME/)")
        p.add_argument("--epochs", type=int, help="override train.epochs")
        p.add_argument("--data", help="override data.source (digits, shapes, a directory, an .npz file, …)")
        p.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE", help="override any spec value")
        p.add_argument("--tensorboard", action="store_true",
                       help="write TensorBoard event files in RUN/tensorboard/ (train.tensorboard: true)")
        _budget_args(p)
        return
    from .check.data import precheck_spec
    from .parse import resolve_spec, with_budget
    from .parse.overrides import given, settings
    from .sources import DataError
    from .train.run import TrainingError, train as train_run
    overrides = []
    if args.data is not None:
        overrides += [given("data.source", args.data, "--data"), given("data.path", None, "--data")]
    if args.epochs is not None:
        overrides.append(given("train.epochs", args.epochs, "--epochs"))
    if args.tensorboard:
        overrides.append(given("train.tensorboard", True, "--tensorboard"))
    overrides += settings(args.sets)
    spec = with_budget(resolve_spec(args.spec, overrides), args.max_params, args.max_memory)
    from .parse.gan import GanSpec
    try:
        if not isinstance(spec, GanSpec):   # a GAN's data: prechecked by train/gan.py, before TensorFlow too
            precheck_spec(spec)      # data mistakes knowable without TensorFlow, answered before it starts
        _quiet_tensorflow(args)
        metrics = train_run(spec, out=args.out)
    except (DataError, TrainingError) as e:
        print(f"cnnbuild train: {e}", file=sys.stderr)
        return 1
    except (SpecError, UsageError, KeyboardInterrupt):
        raise
    except Exception as e:  # a failure inside TensorFlow: one line, the traceback behind a switch
        return _failed("train", e)
    return 0 if metrics is not None else 1


@command("data", "pack a dataset into TFRecord shards, or time the input pipeline alone")
def data(p, args):
    if args is None:
        actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
        pack = actions.add_parser("pack", help="a class-folder directory, an .npz or a tfds dataset → sharded TFRecord "
                                               "files + index.json")
        pack.add_argument("source", help="a class-folder directory, an .npz file, or tfds:NAME (prepared in --data-dir)")
        pack.add_argument("--data-dir", help="for tfds:NAME: the tfds data_dir it was prepared in")
        pack.add_argument("--split", default="train", help="for tfds:NAME: the split to pack (default train)")
        pack.add_argument("--out", required=True, help="the folder to write (must not exist)")
        pack.add_argument("--shards", type=_positive_int, help="how many shard files (default: one per 2,000 images)")
        pack.add_argument("--size", type=_positive_int, nargs=2, metavar=("H", "W"), help="resize every image (stored as PNG)")
        bench = actions.add_parser("bench", help="time a spec's input pipeline (read, decode, augment; no model)")
        bench.add_argument("spec", help="the YAML spec whose data section to read")
        bench.add_argument("--batches", type=_positive_int, default=50, help="batches to time (default 50)")
        bench.add_argument("--data", help="override data.source")
        return
    from .sources import DataError
    try:
        if args.action == "pack":
            _quiet_tensorflow(args)
            from .sources import pack
            index = pack(args.source, args.out, args.shards, args.size, data_dir=args.data_dir, split=args.split)
            print(f"{args.out}: {index['count']:,} images, {len(index['classes'])} classes, "
                  f"{len(index['shards'])} shard{'s' if len(index['shards']) != 1 else ''}"
                  + (f", {len(index['skipped'])} unreadable files left out" if index["skipped"] else ""))
            return 0
        from .check.data import precheck_spec
        from .parse import resolve_spec
        from .parse.overrides import given
        from .train.data import bench_input
        overrides = [given("data.source", args.data, "--data"), given("data.path", None, "--data")] if args.data else []
        spec = resolve_spec(args.spec, overrides)
        from .parse.gan import GanSpec
        if isinstance(spec, GanSpec):
            raise UsageError(f"{args.spec} is a GAN spec; data bench times a classifier spec's input pipeline "
                             "(give a spec with the same data: section)")
        precheck_spec(spec)
        _quiet_tensorflow(args)
        result = bench_input(spec, args.batches)
    except DataError as e:
        print(f"cnnbuild data: {e}", file=sys.stderr)
        return 1
    print(f"{result['data']}\n{result['pipeline']}\nfirst batch after {result['first_batch_seconds']:.2f}s; "
          f"{result['images']:,} images in {result['seconds']:.2f}s: {result['images_per_second']:,.0f} images/second")
    return 0


@command("export", "export a trained run as a verified SavedModel (or keras, onnx, tflite)")
def export(p, args):
    if args is None:
        p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by cnnbuild train (e.g. runs/lenet5); "
                                                          "of a GAN run, the generator is exported (SavedModel)")
        p.add_argument("--out", help="destination (default RUN_DIR/export/FORMAT)")
        p.add_argument("--format", default="savedmodel", choices=["savedmodel", "keras", "onnx", "tflite"])
        return
    _quiet_tensorflow(args)
    import time

    from .serve.export import LABELS, ExportError, export_run
    from .serve.sample import is_gan_run
    try:
        start = time.perf_counter()
        if is_gan_run(args.run_dir):      # a GAN run: its generator (serve/gan_export.py)
            from .serve.gan_export import describe, export_generator
            manifest = export_generator(args.run_dir, args.out, args.format)
            print(describe(args.run_dir, manifest, time.perf_counter() - start))
            return 0
        manifest = export_run(args.run_dir, args.out, args.format)
    except ExportError as e:
        print(f"cnnbuild export: error: {e}", file=sys.stderr)
        return 1
    check = manifest["verified"]
    print(f"exported {args.run_dir} → {manifest['path']} ({LABELS[manifest['format']]}, {len(manifest['classes'])} classes, "
          f"input uint8 [batch, height, width, {manifest['input']['shape'][-1] or 'channels'}]"
          f"{'' if manifest['input']['shape'][-1] else ' with 1, 3 or 4 channels'}, resized to "
          f"{'×'.join(map(str, manifest['input']['training_size']))})")
    print(f"verified with {check['runtime']}: max |export − Keras| = {check['max_abs_diff']:.2e} on {check['images']} "
          f"images (≤ {check['tolerance']:g}); two calls identical; {time.perf_counter() - start:.1f} s")
    return 0


@command("sample", "pictures from a trained GAN: a PNG grid, or one PNG per sample")
def sample(p, args):
    if args is None:
        p.add_argument("run_dir", metavar="RUN", help="a GAN run folder (cnnbuild train GAN_SPEC) or its export")
        p.add_argument("--n", type=_positive_int, default=64,
                       help="samples (default 64; a conditional run without --class makes ⌈N/K⌉ of each class)")
        p.add_argument("--class", dest="class_name", metavar="K", help="of a conditional run: the class, by index or name")
        p.add_argument("--seed", type=int, default=0, help="the noise seed (default 0: the same pictures every time)")
        p.add_argument("--out", metavar="grid.png | DIR/", help="the grid PNG (default RUN/sample.png), or a folder "
                                                               "(existing, or ending in /) for one PNG per sample")
        return
    _quiet_tensorflow(args)
    from .serve.sample import sample_run
    result = sample_run(args.run_dir, args.n, args.class_name, args.seed, args.out)
    written = f"a grid: {result['path']}" if result["grid"] else f"{len(result['files'])} files in {result['path']}"
    print(f"sampled {result['count']} images ({result['what']}, seed {result['seed']}, "
          f"{'×'.join(map(str, result['image_shape']))}) from {result['run']} → {written}")
    return 0


@command("predict", "classify image files with an export (or a run folder)")
def predict(p, args):
    if args is None:
        p.add_argument("model", metavar="EXPORT_OR_RUN_DIR",
                       help="an export folder (RUN_DIR/export/savedmodel) or a run folder (exported first if needed)")
        p.add_argument("images", nargs="+", metavar="IMAGE", help="png, jpg, bmp or gif files")
        p.add_argument("--top", type=int, default=1, metavar="K", help="show the K most likely classes (default 1)")
        p.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
        p.add_argument("--out", default="predictions", metavar="DIR",
                       help="where a segmentation model's masks and overlays go (default predictions/)")
        return
    _quiet_tensorflow(args)
    import json

    from .serve.export import ExportError
    from .serve.predict import predict_files
    if args.top < 1:
        raise UsageError(f"--top {args.top}: must be at least 1 (the number of best classes to show)")
    try:
        predictions = predict_files(args.model, args.images, args.top, args.out)
    except ExportError as e:
        print(f"cnnbuild predict: error: {e}", file=sys.stderr)
        return 1
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


@command("evaluate", "accuracy, per-class precision and recall, confusion matrix (of a GAN run: its samples, "
                     "classified with --classifier)")
def evaluate(p, args):
    if args is None:
        p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by cnnbuild train (e.g. runs/lenet5)")
        p.add_argument("--data", help="evaluate on every image of another source (a class-folder directory, an .npz, "
                                      "digits, …) instead of the run's validation data")
        p.add_argument("--out", metavar="FILE.png", help="the confusion-matrix picture (default RUN_DIR/confusion_matrix.png; "
                                                          "the figures go beside it as .json)")
        p.add_argument("--json", action="store_true", help="print the figures as one JSON document")
        p.add_argument("--classifier", metavar="RUN_OR_EXPORT",
                       help="of a GAN run: score its samples with this classifier (trained by cnnbuild on the same data)")
        p.add_argument("--n", type=_positive_int, default=1000, help="of a GAN run: samples to classify (default 1000)")
        p.add_argument("--seed", type=int, default=0, help="of a GAN run: the noise seed (default 0)")
        return
    _quiet_tensorflow(args)
    import json
    from pathlib import Path

    from . import runfolder
    from .serve.evaluate import PNG, draw_confusion, evaluate_run, format_result
    from .serve.sample import is_gan_run
    from .sources import DataError
    if is_gan_run(args.run_dir) or args.classifier:
        return _evaluate_gan(args)
    try:
        result = evaluate_run(args.run_dir, args.data)
    except DataError as e:
        print(f"cnnbuild evaluate: error: {e}", file=sys.stderr)
        return 1
    png = Path(args.out) if args.out else Path(args.run_dir) / PNG
    runfolder.write_json(png.with_suffix(".json"), result.to_json())
    draw_confusion(result, png)
    if args.json:
        print(json.dumps(result.to_json() | {"png": str(png)}, indent=2, ensure_ascii=False))
    else:
        print(format_result(result))
        print(f"confusion matrix: {png}; figures: {png.with_suffix('.json')}")
    return 0


def _evaluate_gan(args) -> int:
    """`cnnbuild evaluate GAN_RUN --classifier RUN_OR_EXPORT`: the GAN's samples, classified."""
    import json
    from pathlib import Path

    from . import runfolder
    from .serve.evaluate import SAMPLE_FIGURES, draw_confusion, evaluate_gan, format_gan_result
    from .serve.sample import is_gan_run
    if not is_gan_run(args.run_dir):
        raise UsageError(f"--classifier: {args.run_dir} is not a GAN run (no gan.json); --classifier scores a GAN's "
                         f"samples; evaluate a classifier run without it: cnnbuild evaluate {args.run_dir}")
    if not args.classifier:
        raise UsageError(f"{args.run_dir}: a GAN run; score its samples with a classifier trained on the same data: "
                         f"cnnbuild evaluate {args.run_dir} --classifier runs/lenet5")
    if args.data:
        raise UsageError("--data: a GAN run is evaluated on its own samples; leave out --data")
    result = evaluate_gan(args.run_dir, args.classifier, args.n, args.seed)
    png = Path(args.out) if args.out else Path(args.run_dir) / SAMPLE_FIGURES
    runfolder.write_json(png.with_suffix(".json"), result.to_json())
    drawn = result.asked is not None and len(result.asked.classes) == len(result.classes)
    if drawn:                  # the asked-for × classified-as matrix, square when the classes match
        draw_confusion(result.asked, png)
    if args.json:
        print(json.dumps(result.to_json() | ({"png": str(png)} if drawn else {}), indent=2, ensure_ascii=False))
    else:
        print(format_gan_result(result))
        print(f"{f'asked for × classified as: {png}; ' if drawn else ''}figures: {png.with_suffix('.json')}")
    return 0


@command("draw", "draw the architecture as SVG or PNG (pure Python)")
def draw(p, args):
    if args is None:
        p.add_argument("spec", help="the YAML spec (e.g. specs/lenet5.yaml)")
        p.add_argument("--out", help="FILE.svg or FILE.png (default NAME.svg; of a GAN spec, FILE_generator.svg "
                                     "and FILE_discriminator.svg)")
        return
    from .parse.gan import GanSpec
    from .views.draw import draw as draw_spec
    spec = _load(args.spec, args)
    out = args.out or f"{spec.name}.svg"
    if isinstance(spec, GanSpec):   # one drawing per network, then the pair's errors
        from pathlib import Path

        from .check.gan import infer_gan
        stem, suffix = Path(out).with_suffix(""), Path(out).suffix or ".svg"
        for role in ("generator", "discriminator"):
            drawn = f"{stem}_{role}{suffix}"
            draw_spec(getattr(spec, role), drawn)
            print(f"wrote {drawn}")
        report = infer_gan(spec)
        for problem in report.errors:
            print(f"error: {problem}")
        return 0 if report.valid else 1
    report = draw_spec(spec, out)
    for problem in report.errors:
        print(f"error: {problem}")
    print(f"wrote {out}")
    return 0 if report.valid else 1


@command("schema", "print the JSON Schema of the spec language (for editors)")
def schema(p, args):
    if args is None:
        return
    import json

    from .views.schema import spec_schema
    sys.stdout.write(json.dumps(spec_schema(), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    fn = COMMANDS[args.command][0]
    try:
        status = fn(None, args) or 0
        sys.stdout.flush()     # inside the try: a reader that has gone is noticed here, not at exit
        return status
    except BrokenPipeError:   # `cnnbuild check … | head`: the reader has stopped, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nothing more to flush at exit
        return 141                                                        # 128 + SIGPIPE, as `seq 1 100000 | head` ends
    except SpecError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"cnnbuild {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:   # the last resort: a bug in cnnbuild (or a case it does not know), never a raw traceback
        if os.environ.get("CNNBUILD_DEBUG"):
            raise
        print(internal_error(args.command, e), file=sys.stderr)
        return 1


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
